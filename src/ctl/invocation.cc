#include "ctl/invocation.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "shared/config.h"

namespace phalanx::ctl {

namespace {

// Longer waits are a typo, not a plan: a day.
constexpr double kMaxTimeoutSeconds = 86400;

constexpr const char* kCommandList =
    "status, reload, scale N, stop, show info, show stat, upstreams, breaker open|close UPSTREAM "
    "TARGET, access, keys [N], cache purge [PREFIX], routes, errors [N], help";

struct Parser {
  Invocation invocation;
  std::vector<std::string_view> words;
  std::string error;

  bool fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }
};

bool parseTimeout(Parser& p, std::string_view text) {
  // Plain decimals only: strtod alone would also take "0x10", "1e3" and " 5".
  bool plain = text.find_first_not_of("0123456789.") == std::string_view::npos &&
               text.find_first_of("0123456789") != std::string_view::npos &&
               std::count(text.begin(), text.end(), '.') <= 1;
  std::string copy(text);
  double seconds = plain ? std::strtod(copy.c_str(), nullptr) : 0;
  if (!plain || seconds <= 0 || seconds > kMaxTimeoutSeconds) {
    return p.fail("--timeout needs a number of seconds above 0 and at most 86400, got '" + copy +
                  "'");
  }
  p.invocation.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
  return true;
}

// Handles one option at args[i]; advances i past its value. False on error.
bool parseOption(Parser& p, const std::vector<std::string_view>& args, size_t& i) {
  std::string_view arg = args[i];
  std::string_view name = arg;
  std::optional<std::string_view> value;
  if (arg.starts_with("--")) {
    size_t eq = arg.find('=');
    if (eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
  }
  auto takesValue = [&](std::string& out) {
    if (!value) {
      if (i + 1 >= args.size()) return p.fail("option " + std::string(name) + " needs a value");
      value = args[++i];
    }
    if (value->empty()) return p.fail("option " + std::string(name) + " needs a value");
    out = std::string(*value);
    return true;
  };
  if (name == "-h" || name == "--help") {
    p.invocation.action = Invocation::Action::PrintHelp;
  } else if (name == "-v" || name == "--version") {
    if (p.invocation.action == Invocation::Action::Run) {
      p.invocation.action = Invocation::Action::PrintVersion;
    }
  } else if (name == "--json") {
    p.invocation.json = true;
  } else if (name == "-s" || name == "--socket") {
    return takesValue(p.invocation.socket);
  } else if (name == "-c" || name == "--config") {
    return takesValue(p.invocation.config);
  } else if (name == "--timeout") {
    std::string text;
    return takesValue(text) && parseTimeout(p, text);
  } else {
    return p.fail("unknown option '" + std::string(arg) + "'");
  }
  if (value) return p.fail("option " + std::string(name) + " takes no value");
  return true;
}

// "4" → 4 for 1..kMaxWorkers; digits only (no sign, no spaces, no "4.0").
std::optional<unsigned> parseWorkerCount(std::string_view text) {
  if (text.empty() || text.size() > 6) return std::nullopt;
  unsigned n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  if (n < 1 || n > shared::kMaxWorkers) return std::nullopt;
  return n;
}

bool parseCommand(Parser& p) {
  const auto& w = p.words;
  if (w.empty()) return p.fail("no command given (commands: " + std::string(kCommandList) + ")");
  Invocation& inv = p.invocation;
  std::string first(w[0]);
  auto noArguments = [&](Command command) {
    if (w.size() > 1) {
      std::string got;
      for (size_t i = 1; i < w.size(); ++i) got += (i > 1 ? " " : "") + std::string(w[i]);
      return p.fail("'" + first + "' takes no arguments (got '" + got + "')");
    }
    inv.command = command;
    inv.line = first + "\n";
    return true;
  };
  if (first == "status") return noArguments(Command::Status);
  if (first == "reload") return noArguments(Command::Reload);
  if (first == "upgrade") return noArguments(Command::Upgrade);
  if (first == "stop") return noArguments(Command::Stop);
  if (first == "help") return noArguments(Command::Help);
  if (first == "scale") {
    if (w.size() != 2)
      return p.fail("usage: scale N (a worker count from 1 to " +
                    std::to_string(shared::kMaxWorkers) + ")");
    std::optional<unsigned> n = parseWorkerCount(w[1]);
    if (!n) {
      return p.fail("scale: N must be a whole number from 1 to " +
                    std::to_string(shared::kMaxWorkers) + ", got '" + std::string(w[1]) + "'");
    }
    inv.command = Command::Scale;
    inv.line = "scale " + std::to_string(*n) + "\n";
    return true;
  }
  if (first == "upstreams") return noArguments(Command::Upstreams);
  if (first == "access") return noArguments(Command::Access);
  if (first == "routes") return noArguments(Command::Routes);
  if (first == "errors") {
    if (w.size() > 2 || (w.size() == 2 && (w[1].empty() || w[1].size() > 3 ||
                                           w[1].find_first_not_of("0123456789") !=
                                               std::string_view::npos))) {
      return p.fail("usage: errors [N] (the N most recent, default 20, at most 100)");
    }
    inv.command = Command::Errors;
    inv.line = w.size() == 2 ? "errors " + std::string(w[1]) + "\n" : "errors\n";
    return true;
  }
  if (first == "cache") {
    if (w.size() < 2 || w.size() > 3 || w[1] != "purge" || (w.size() == 3 && w[2][0] != '/')) {
      return p.fail("usage: cache purge [PREFIX] (a path prefix like /api/; none: everything)");
    }
    inv.command = Command::CachePurge;
    inv.line = w.size() == 3 ? "cache purge " + std::string(w[2]) + "\n" : "cache purge\n";
    return true;
  }
  if (first == "keys") {
    if (w.size() > 2 || (w.size() == 2 && (w[1].empty() || w[1].size() > 4 ||
                                           w[1].find_first_not_of("0123456789") !=
                                               std::string_view::npos))) {
      return p.fail("usage: keys [N] (the N busiest keys, default 20)");
    }
    inv.command = Command::Keys;
    inv.line = w.size() == 2 ? "keys " + std::string(w[1]) + "\n" : "keys\n";
    return true;
  }
  if (first == "breaker") {
    if (w.size() != 4 || (w[1] != "open" && w[1] != "close")) {
      return p.fail("usage: breaker open|close UPSTREAM TARGET (TARGET as in the config)");
    }
    inv.command = w[1] == "open" ? Command::BreakerOpen : Command::BreakerClose;
    inv.line = "breaker " + std::string(w[1]) + " " + std::string(w[2]) + " " +
               std::string(w[3]) + "\n";
    return true;
  }
  if (first == "show") {
    if (w.size() == 2 && (w[1] == "info" || w[1] == "stat")) {
      inv.command = w[1] == "info" ? Command::ShowInfo : Command::ShowStat;
      inv.line = "show " + std::string(w[1]) + "\n";
      return true;
    }
    return p.fail("usage: show info | show stat");
  }
  return p.fail("unknown command '" + first + "' (commands: " + kCommandList + ")");
}

// The control_socket of a config file that has errors: read on its own, as the
// master would if only the other keys were wrong.
std::optional<std::string> rawControlSocket(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text).get(root) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::element value;
  if (object.at_key("control_socket").get(value) != simdjson::SUCCESS) {
    return shared::Config{}.control_socket;
  }
  std::string_view path;
  if (value.get_string().get(path) != simdjson::SUCCESS || path.empty()) return std::nullopt;
  return std::string(path);
}

}  // namespace

ParsedCommandLine parseCommandLine(const std::vector<std::string_view>& args) {
  Parser p;
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (!options_ended && arg == "--") {
      options_ended = true;
    } else if (!options_ended && arg.size() > 1 && arg[0] == '-' &&
               !(arg[1] >= '0' && arg[1] <= '9')) {
      // ("-1" is a word, so `scale -1` hears about its count, not an option.)
      if (!parseOption(p, args, i)) break;
    } else {
      p.words.push_back(arg);
    }
  }
  // -h and -v answer even when the rest of the line is wrong or empty.
  if (p.invocation.action != Invocation::Action::Run) {
    return ParsedCommandLine{.invocation = p.invocation, .error = {}};
  }
  if (p.error.empty()) parseCommand(p);
  if (!p.error.empty()) return ParsedCommandLine{.invocation = std::nullopt, .error = p.error};
  return ParsedCommandLine{.invocation = p.invocation, .error = {}};
}

std::string usage() {
  return "usage: phalanxctl [-s SOCKET | -c CONFIG] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
         "\n"
         "Asks a running phalanx master one thing over its control socket.\n"
         "\n"
         "commands:\n"
         "  status      the master and every worker, as a table\n"
         "  reload      reload the config and replace the workers; waits for the outcome\n"
         "  upgrade     run the binary on disk as a new master that takes over (like\n"
         "              SIGUSR2); waits until it serves or failed\n"
         "  scale N     run N workers (1 to " +
         std::to_string(shared::kMaxWorkers) +
         ")\n"
         "  stop        stop phalanx gracefully\n"
         "  show info   HAProxy-style \"Name: value\" lines\n"
         "  show stat   HAProxy-style CSV, one row per worker\n"
         "  upstreams   every upstream target: health, breaker, in-flight, traffic, latency\n"
         "  breaker open UPSTREAM TARGET\n"
         "              force a target's circuit breaker open (it half-opens after open_ms)\n"
         "  breaker close UPSTREAM TARGET\n"
         "              force it closed, its failure counts cleared\n"
         "  access      rate limits (allowed, limited, Redis fallbacks), table, auth failures,\n"
         "              cache hits and misses, Redis connections\n"
         "  keys [N]    the N busiest API keys / JWT subjects: requests, refusals, last seen\n"
         "  routes      every route by traffic: requests, status classes, p50/p95/p99\n"
         "  errors [N]  the N most recent 5xx: time, route, status, client, request id, upstream\n"
         "  cache purge [PREFIX]\n"
         "              empty the response cache of paths starting with PREFIX (both levels)\n"
         "  help        the commands the master knows\n"
         "\n"
         "options:\n"
         "  -s, --socket PATH      the control socket\n"
         "  -c, --config FILE      use control_socket from this phalanx config\n"
         "      --json             print the master's JSON answer as it came\n"
         "      --timeout SECONDS  how long to wait for the answer (default 5, reload and upgrade 120)\n"
         "  -h, --help             this text\n"
         "  -v, --version          phalanxctl's version\n"
         "\n"
         "The socket is -s, else control_socket from -c, else $PHALANX_SOCKET, else\n"
         "/run/phalanx/phalanx.sock. A relative path is taken from the current directory;\n"
         "phalanx takes a relative control_socket from its own working directory, so run\n"
         "phalanxctl -c from there.\n"
         "\n"
         "exit status: 0 done; 1 the master refused or failed the command; 2 usage or\n"
         "config file error; 3 the master could not be reached or gave no usable answer.\n";
}

std::chrono::milliseconds effectiveTimeout(const Invocation& invocation) {
  if (invocation.timeout) return *invocation.timeout;
  return invocation.command == Command::Reload || invocation.command == Command::Upgrade
             ? kReloadTimeout
             : kDefaultTimeout;
}

SocketChoice resolveSocket(const Invocation& invocation, const char* env_socket) {
  if (!invocation.socket.empty()) return SocketChoice{.path = invocation.socket, .error = {}};
  if (!invocation.config.empty()) {
    std::string text;
    shared::ConfigResult loaded = shared::loadConfigFile(invocation.config, &text);
    if (loaded.config) return SocketChoice{.path = loaded.config->control_socket, .error = {}};
    if (std::optional<std::string> path = rawControlSocket(text)) {
      return SocketChoice{.path = *path, .error = {}};
    }
    std::string error;
    for (const std::string& line : loaded.errors) error += (error.empty() ? "" : "\n") + line;
    return SocketChoice{.path = {}, .error = error};
  }
  if (env_socket != nullptr && *env_socket != '\0') {
    return SocketChoice{.path = env_socket, .error = {}};
  }
  return SocketChoice{.path = kDefaultSocket, .error = {}};
}

}  // namespace phalanx::ctl
