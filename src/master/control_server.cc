#include "master/control_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace phalanx::master {

namespace {

constexpr size_t kMaxLineBytes = 4096;
constexpr uint64_t kReadTimeoutMs = 5000;

// Is the socket at `path` a leftover of a master that died? Only a refused
// connect says so; any other failure (EACCES, a full backlog: EAGAIN on a
// non-blocking connect) may be a live master's.
bool socketIsStale(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool stale =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return stale;
}

}  // namespace

std::optional<std::vector<std::string>> splitCommandLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
      auto c = static_cast<unsigned char>(line[i]);
      if (c < 0x20 || c == 0x7f) return std::nullopt;
      ++i;
    }
    if (i > start) words.emplace_back(line.substr(start, i - start));
  }
  if (words.empty()) return std::nullopt;
  return words;
}

const ControlCommand* findCommand(const std::vector<ControlCommand>& table,
                                  const std::vector<std::string>& words,
                                  std::vector<std::string>* args) {
  const ControlCommand* best = nullptr;
  for (const auto& command : table) {
    if (command.words.size() > words.size()) continue;
    if (!std::equal(command.words.begin(), command.words.end(), words.begin())) continue;
    if (!best || command.words.size() > best->words.size()) best = &command;
  }
  if (best) args->assign(words.begin() + static_cast<long>(best->words.size()), words.end());
  return best;
}

std::string commandHelp(const std::vector<ControlCommand>& table) {
  std::string text;
  for (const auto& command : table) {
    std::string usage;
    for (const auto& w : command.words) usage += (usage.empty() ? "" : " ") + w;
    if (!command.arguments.empty()) usage += " " + command.arguments;
    text += "  " + usage + std::string(usage.size() < 14 ? 14 - usage.size() : 1, ' ') +
            command.help + "\n";
  }
  return text;
}

struct ControlServer::Connection : ControlReply {
  ControlServer* server = nullptr;
  uv_pipe_t pipe{};
  uv_timer_t timer{};
  uv_write_t write_request{};
  std::string input;
  std::string output;
  bool answered = false;
  bool closing = false;
  int open_handles = 2;
  std::shared_ptr<Connection> self;  // keeps this alive until both handles are closed

  void ok(const std::function<void(shared::JsonWriter&)>& members) override {
    shared::JsonWriter w;
    w.beginObject();
    w.field("version", kControlProtocolVersion);
    w.field("ok", true);
    if (members) members(w);
    w.endObject();
    answer(w.take());
  }

  void fail(std::string_view message) override {
    shared::JsonWriter w;
    w.beginObject();
    w.field("version", kControlProtocolVersion);
    w.field("ok", false);
    w.field("error", message);
    w.endObject();
    answer(w.take());
  }

  void answer(std::string json) {
    if (answered || closing) return;
    answered = true;
    output = std::move(json);
    output += '\n';
    uv_buf_t buf = uv_buf_init(output.data(), static_cast<unsigned>(output.size()));
    write_request.data = this;
    int rc = uv_write(&write_request, reinterpret_cast<uv_stream_t*>(&pipe), &buf, 1,
                      [](uv_write_t* req, int) { static_cast<Connection*>(req->data)->close(); });
    if (rc != 0) close();
  }

  void close() {
    if (closing) return;
    closing = true;
    auto done = [](uv_handle_t* h) {
      auto* c = static_cast<Connection*>(h->data);
      if (--c->open_handles == 0) {
        std::erase(c->server->connections_, c->self);
        c->self.reset();  // may free this (unless a reply is still held)
      }
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), done);
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe), done);
  }
};

ControlServer::ControlServer(uv_loop_t* loop, std::vector<ControlCommand> commands)
    : loop_(loop), commands_(std::move(commands)) {
  commands_.insert(commands_.begin(),
                   {{"help"}, "", "list the commands", [this](const auto&, auto reply) {
                      std::string text = commandHelp(commands_);
                      reply->ok([&](shared::JsonWriter& w) { w.field("text", text); });
                    }});
}

ControlServer::~ControlServer() = default;

bool ControlServer::listen(const std::string& path, std::string* error) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    *error = path + ": longer than a Unix socket path may be (" +
             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)";
    return false;
  }
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    *error = parent.string() + ": cannot create the directory: " + ec.message();
    return false;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + ": exists and is not a socket";
      return false;
    }
    if (!socketIsStale(path)) {
      *error = path + ": another phalanx master is answering on this control socket";
      return false;
    }
    unlink(path.c_str());  // a stale socket of a master that died
  }
  // Bound here, not with uv_pipe_bind: libuv unlinks the path of a pipe it
  // bound when the handle closes, and after an upgrade that path is the new
  // master's socket. close() unlinks only what is still ours.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = path + ": socket: " + std::strerror(errno);
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  mode_t old_mask = umask(0177);  // created 0600: no window where others may connect
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old_mask);
  if (bound != 0 || ::listen(fd, 16) != 0) {
    *error = path + ": " + std::strerror(errno);
    ::close(fd);
    if (bound == 0) unlink(path.c_str());
    return false;
  }
  uv_pipe_init(loop_, &server_, 0);
  server_.data = this;
  int rc = uv_pipe_open(&server_, fd);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 16, [](uv_stream_t* s, int status) {
      if (status == 0) static_cast<ControlServer*>(s->data)->onConnection();
    });
  }
  if (rc != 0) {
    *error = path + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);  // closes fd
    unlink(path.c_str());
    return false;
  }
  chmod(path.c_str(), 0600);
  listening_ = true;
  path_ = path;
  if (lstat(path.c_str(), &st) == 0) inode_ = st.st_ino;
  return true;
}

bool ControlServer::moveTo(const std::string& path, std::string* error) {
  if (rename(path_.c_str(), path.c_str()) != 0) {
    *error = path_ + " → " + path + ": " + std::strerror(errno);
    return false;
  }
  path_ = path;
  return true;
}

void ControlServer::close() {
  if (!listening_) return;
  listening_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  // Not when the path is another socket now: a new master's, after an upgrade.
  struct stat st {};
  if (lstat(path_.c_str(), &st) == 0 && st.st_ino == inode_) unlink(path_.c_str());
  auto open = connections_;  // close() erases from the list
  for (auto& c : open) c->close();
}

void ControlServer::onConnection() {
  auto c = std::make_shared<Connection>();
  c->server = this;
  c->self = c;
  uv_pipe_init(loop_, &c->pipe, 0);
  c->pipe.data = c.get();
  uv_timer_init(loop_, &c->timer);
  c->timer.data = c.get();
  connections_.push_back(c);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&server_),
                reinterpret_cast<uv_stream_t*>(&c->pipe)) != 0) {
    c->close();
    return;
  }
  uv_os_fd_t fd = -1;
  ucred peer{};
  socklen_t len = sizeof peer;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&c->pipe), &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
      (peer.uid != 0 && peer.uid != geteuid())) {
    spdlog::warn("control: refused a client (uid {}, pid {})", peer.uid, peer.pid);
    c->fail("permission denied");
    return;
  }
  uv_timer_start(
      &c->timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->close(); }, kReadTimeoutMs,
      0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->pipe),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char chunk[1024];  // one loop thread: read callbacks never overlap
        *buf = uv_buf_init(chunk, sizeof chunk);
      },
      [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* conn = static_cast<Connection*>(stream->data);
        std::shared_ptr<Connection> keep = conn->self;
        if (n < 0) {
          // EOF without a newline: take what came as the line (`printf status | socat`).
          uv_read_stop(stream);
          if (n == UV_EOF && !conn->input.empty()) {
            conn->server->onLine(keep, conn->input);
          } else {
            conn->close();
          }
          return;
        }
        conn->input.append(buf->base, static_cast<size_t>(n));
        size_t newline = conn->input.find('\n');
        if (newline != std::string::npos) {
          uv_read_stop(stream);
          conn->server->onLine(keep, std::string_view(conn->input).substr(0, newline));
        } else if (conn->input.size() > kMaxLineBytes) {
          uv_read_stop(stream);
          conn->fail("request line too long");
        }
      });
}

void ControlServer::onLine(const std::shared_ptr<Connection>& connection, std::string_view line) {
  uv_timer_stop(&connection->timer);
  auto words = splitCommandLine(line);
  if (!words) {
    connection->fail("empty or unprintable command; try \"help\"");
    return;
  }
  std::vector<std::string> args;
  const ControlCommand* command = findCommand(commands_, *words, &args);
  if (!command) {
    connection->fail("unknown command \"" + (*words)[0] + "\"; try \"help\"");
    return;
  }
  spdlog::debug("control: {}", line);
  command->run(args, connection);
}

}  // namespace phalanx::master
