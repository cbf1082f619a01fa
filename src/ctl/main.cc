// phalanxctl: asks a running phalanx master one thing over its control socket
// and prints the answer for people (tables, one-line outcomes) or, with
// --json, as the master sent it. See usage() for the command line and the exit
// codes.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/answer.h"
#include "ctl/control_client.h"
#include "ctl/invocation.h"

namespace {

using namespace phalanx::ctl;

// Every line of `message` on stderr, each prefixed, so a multi-line error (a
// config's) stays attributable.
void complain(std::string_view message) {
  while (true) {
    size_t end = message.find('\n');
    std::fprintf(stderr, "phalanxctl: %.*s\n", static_cast<int>(message.substr(0, end).size()),
                 message.data());
    if (end == std::string_view::npos || end + 1 == message.size()) return;
    message.remove_prefix(end + 1);
  }
}

void print(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
}

uint64_t wallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

int run(const Invocation& invocation) {
  SocketChoice socket = resolveSocket(invocation, std::getenv(kSocketEnv));
  if (!socket.error.empty()) {
    complain(socket.error);
    return kExitUsage;
  }
  std::chrono::milliseconds timeout = effectiveTimeout(invocation);
  ClientResult result = request(socket.path, invocation.line, {.timeout = timeout});
  if (result.error != ClientError::None) {
    complain(describeClientError(result, socket.path, timeout));
    return result.error == ClientError::PathTooLong ? kExitUsage : kExitUnreachable;
  }
  std::string error;
  std::optional<Answer> answer = Answer::parse(result.answer, &error);
  if (!answer) {
    complain("invalid answer: " + error);
    return kExitUnreachable;
  }
  if (invocation.json) print(result.answer + "\n");
  if (!answer->ok()) {
    complain(answer->error());
    return kExitRefused;
  }
  if (invocation.json) return kExitOk;
  std::optional<std::string> text =
      renderAnswer(invocation.command, *answer, wallClockMs(), &error);
  if (!text) {
    complain("invalid answer: " + error);
    return kExitUnreachable;
  }
  print(*text);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  ParsedCommandLine parsed = parseCommandLine(args);
  int code = kExitOk;
  if (!parsed.invocation) {
    complain(parsed.error);
    std::fputs("try 'phalanxctl --help'\n", stderr);
    return kExitUsage;
  }
  switch (parsed.invocation->action) {
    case Invocation::Action::PrintHelp: print(usage()); break;
    case Invocation::Action::PrintVersion: print("phalanxctl " PHALANX_VERSION "\n"); break;
    case Invocation::Action::Run: code = run(*parsed.invocation); break;
  }
  // Output that never arrived (a full disk, a closed pipe) must not look done.
  if (std::fflush(stdout) != 0) {
    std::perror("phalanxctl: writing the output");
    if (code == kExitOk) code = kExitRefused;
  }
  return code;
}
