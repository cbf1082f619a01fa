// The control socket: a Unix stream socket (mode 0600) where phalanxctl, or
// `socat`, asks the master one thing per connection.
//
// Protocol: the client writes one line, command words separated by spaces
// ("status\n", "scale 4\n"); the master answers one JSON object and a newline,
// then closes. Every answer carries "version": 1 and "ok"; a failure carries
// "error". A peer that is neither our user nor root is refused.
//
// Strict: a command runs only as its table row says. Words after one that takes
// none ("stop --help"), a line that is not UTF-8 or holds a control character,
// one longer than 4096 bytes: each gets an error answer and runs nothing. Every
// answer is valid UTF-8 JSON, whatever bytes came in.
//
// Commands are rows in a table (words, arguments, help, handler) that the
// master builds; the server adds `help`, generated from the table. A handler may answer later (a
// reload answers once it is done): it keeps the ControlReply.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/json_writer.h"

namespace phalanx::master {

inline constexpr int kControlProtocolVersion = 1;

// The pending answer of one connection. Answering twice, or after the client
// went away, does nothing.
class ControlReply {
 public:
  virtual ~ControlReply() = default;
  // {"version":1,"ok":true, <members written by `members`>}
  virtual void ok(const std::function<void(shared::JsonWriter&)>& members) = 0;
  // {"version":1,"ok":false,"error":message}
  virtual void fail(std::string_view message) = 0;
};

struct ControlCommand {
  std::vector<std::string> words;  // e.g. {"show", "stat"}
  std::string arguments;           // usage of what follows, e.g. "N"; "" = none
  std::string help;
  // `args` are the words after the command's own.
  std::function<void(const std::vector<std::string>& args, std::shared_ptr<ControlReply>)> run;
};

// The bytes a message shows of a client's request, whatever they are: in
// double quotes, printable ASCII as is, any other byte (and `"`, `\`) as \xNN,
// at most kQuotedBytes of them, then "…". The answer stays valid UTF-8 and
// readable when the request was neither.
inline constexpr size_t kQuotedBytes = 64;
std::string quoteRequestBytes(std::string_view bytes);

// A request line split into words on blanks (a trailing CR LF dropped), or why
// it is no command: empty, not valid UTF-8, or holding a control character.
struct CommandWords {
  std::vector<std::string> words;  // empty iff `error` is set
  std::string error;               // ends with `try "help"`, shows the line quoted
};
CommandWords splitCommandLine(std::string_view line);

// The command whose words begin `words`, or nullptr. `args` gets the rest.
// The server refuses args for a command whose `arguments` usage is empty; the
// others check their own.
const ControlCommand* findCommand(const std::vector<ControlCommand>& table,
                                  const std::vector<std::string>& words,
                                  std::vector<std::string>* args);

// The `help` text: one line per command.
std::string commandHelp(const std::vector<ControlCommand>& table);

class ControlServer {
 public:
  ControlServer(uv_loop_t* loop, std::vector<ControlCommand> commands);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  // Binds `path` (mode 0600, its directory created if missing). A stale socket
  // file left by a dead master is replaced; one a live master answers on is
  // an error, as is any other file at that path.
  bool listen(const std::string& path, std::string* error);

  // Renames the socket file to `path` (atomically replacing what is there):
  // how the new master of an upgrade takes the control socket over, once it
  // serves, from a socket bound beside it.
  bool moveTo(const std::string& path, std::string* error);

  // Stops listening and removes the socket file, unless the path is another
  // socket by now; connections still waiting for an answer are closed.
  void close();

 private:
  struct Connection;
  void onConnection();
  void onLine(const std::shared_ptr<Connection>& connection, std::string_view line);

  uv_loop_t* loop_;
  std::vector<ControlCommand> commands_;
  uv_pipe_t server_{};
  bool listening_ = false;
  std::string path_;
  ino_t inode_ = 0;  // of the socket file bound
  std::list<std::shared_ptr<Connection>> connections_;
};

}  // namespace phalanx::master
