#include "master/control_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "shared/utf8.h"

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

std::string joinWords(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  return text;
}

}  // namespace

std::string quoteRequestBytes(std::string_view bytes) {
  std::string text = "\"";
  for (size_t i = 0; i < bytes.size() && i < kQuotedBytes; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      text += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      text += escaped;
    }
  }
  if (bytes.size() > kQuotedBytes) text += "…";
  return text + "\"";
}

CommandWords splitCommandLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  CommandWords result;
  if (!shared::isValidUtf8(line)) {
    result.error = "the command is not valid UTF-8: " + quoteRequestBytes(line) + "; try \"help\"";
    return result;
  }
  for (char c : line) {
    auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != ' ' && c != '\t') || byte == 0x7f) {
      result.error =
          "the command holds a control character: " + quoteRequestBytes(line) + "; try \"help\"";
      return result;
    }
  }
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) result.words.emplace_back(line.substr(start, i - start));
  }
  if (result.words.empty()) result.error = "empty command; try \"help\"";
  return result;
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
    std::string usage = joinWords(command.words);
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
  bool written = false;  // the answer has left
  // A line too long was answered at once; its rest is read and dropped until
  // its end, as closing with unread input would reset the client's read.
  bool discarding = false;
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
                      [](uv_write_t* req, int) {
                        auto* c = static_cast<Connection*>(req->data);
                        c->written = true;
                        if (!c->discarding) c->close();
                      });
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
        if (conn->discarding) {  // until the line's end; the read timeout bounds it
          if (n < 0 || std::memchr(buf->base, '\n', static_cast<size_t>(n)) != nullptr) {
            uv_read_stop(stream);
            conn->discarding = false;
            if (conn->written) conn->close();
          }
          return;
        }
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
        if (std::min(newline, conn->input.size()) > kMaxLineBytes) {
          conn->discarding = newline == std::string::npos;
          if (!conn->discarding) uv_read_stop(stream);
          conn->input.clear();
          conn->fail("command line longer than " + std::to_string(kMaxLineBytes) +
                     " bytes; one command per line, e.g. \"status\"");
        } else if (newline != std::string::npos) {
          uv_read_stop(stream);
          conn->server->onLine(keep, std::string_view(conn->input).substr(0, newline));
        }
      });
}

void ControlServer::onLine(const std::shared_ptr<Connection>& connection, std::string_view line) {
  uv_timer_stop(&connection->timer);
  CommandWords split = splitCommandLine(line);
  if (!split.error.empty()) {
    connection->fail(split.error);
    return;
  }
  std::vector<std::string> args;
  const ControlCommand* command = findCommand(commands_, split.words, &args);
  if (!command) {
    connection->fail("unknown command " + quoteRequestBytes(joinWords(split.words)) +
                     "; try \"help\"");
    return;
  }
  // `stop --help` must not stop, `reload --dry-run` must not reload.
  if (command->arguments.empty() && !args.empty()) {
    connection->fail(quoteRequestBytes(joinWords(command->words)) + " takes no arguments (got " +
                     quoteRequestBytes(joinWords(args)) + ")");
    return;
  }
  spdlog::debug("control: {}", line);
  command->run(args, connection);
}

}  // namespace phalanx::master
