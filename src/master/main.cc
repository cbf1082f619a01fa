// phalanx: the command line. One binary, three roles:
//   phalanx -c FILE        run the master (foreground, systemd style)
//   phalanx -t -c FILE     check a config and exit
//   phalanx --worker ...   a worker, started by the master only
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "master/master.h"
#include "shared/config.h"
#include "worker/worker.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/phalanx/phalanx.json";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: phalanx [-c FILE]      run (foreground) with the config FILE\n"
               "       phalanx -t [-c FILE]   check the config and exit\n"
               "       phalanx -v             print the version\n"
               "FILE defaults to %s\n",
               kDefaultConfig);
}

bool parseUint(const char* text, uint32_t* out) {
  char* end = nullptr;
  unsigned long v = std::strtoul(text, &end, 10);
  if (end == text || *end != '\0' || v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

int workerMain(int argc, char** argv) {
  phalanx::worker::WorkerOptions options;
  options.shm_fd = 3;
  options.config_fd = 4;
  uint32_t listen_fds = 0, master_pid = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    bool ok = flag == "--slot"         ? parseUint(argv[i + 1], &options.slot)
              : flag == "--cell"       ? parseUint(argv[i + 1], &options.cell)
              : flag == "--generation" ? parseUint(argv[i + 1], &options.generation)
              : flag == "--master-pid" ? parseUint(argv[i + 1], &master_pid)
              : flag == "--listen-fds" ? parseUint(argv[i + 1], &listen_fds)
                                       : false;
    if (!ok) {
      std::fprintf(stderr, "phalanx: --worker is started by the master only (bad %s)\n", argv[i]);
      return phalanx::shared::kExitFatal;
    }
  }
  options.master_pid = static_cast<int>(master_pid);
  for (uint32_t i = 0; i < listen_fds; ++i) options.listen_fds.push_back(5 + static_cast<int>(i));
  std::string title = "phalanx: worker " + std::to_string(options.slot) + " gen " +
                      std::to_string(options.generation);
  uv_set_process_title(title.c_str());
  return phalanx::worker::runWorker(options);
}

int checkConfig(const std::string& path) {
  auto result = phalanx::shared::loadConfigFile(path);
  if (!result.config) {
    for (const auto& e : result.errors) std::fprintf(stderr, "phalanx: %s\n", e.c_str());
    std::fprintf(stderr, "phalanx: config %s: %zu error%s\n", path.c_str(), result.errors.size(),
                 result.errors.size() == 1 ? "" : "s");
    return 1;
  }
  std::printf("phalanx: config %s: ok\n", path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  argv = uv_setup_args(argc, argv);  // lets uv_set_process_title rewrite what ps shows
  if (argc >= 2 && std::strcmp(argv[1], "--worker") == 0) return workerMain(argc, argv);

  std::string config = kDefaultConfig;
  bool test_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-v" || arg == "--version") {
      std::printf("phalanx %s\n", PHALANX_VERSION);
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    } else if (arg == "-t" || arg == "--test") {
      test_only = true;
    } else if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config = argv[++i];
    } else {
      std::fprintf(stderr, "phalanx: unknown argument \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  return test_only ? checkConfig(config) : phalanx::master::runMaster(config);
}
