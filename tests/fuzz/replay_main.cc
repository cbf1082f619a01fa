// Replays inputs through a fuzz harness without libFuzzer, so that the normal
// (gcc) build and the sanitizer build run every seed and every crash ever found
// on each `make test`.
//
//   NAME_fuzz PATH...   PATH is a file or a directory (its files, recursively,
//                       in name order; names starting with '.' are skipped).
//
// A directory that does not exist counts as empty (a harness with no crash yet
// has no crashes/NAME/), but at least one input must be found in all: a replay
// of nothing would pass while testing nothing. A finding aborts (the harness
// traps, or a sanitizer reports); the name of the input is printed before it
// runs, so the last "replay:" line names the culprit.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool hidden(const fs::path& path) {
  std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

// The files under `root` (or `root` itself), sorted so runs are repeatable.
std::vector<fs::path> inputsUnder(const fs::path& root) {
  std::vector<fs::path> files;
  std::error_code error;
  if (fs::is_regular_file(root, error)) return {root};
  if (!fs::is_directory(root, error)) return {};
  fs::recursive_directory_iterator it(root, error), end;
  for (; !error && it != end; it.increment(error)) {
    if (hidden(it->path())) {
      if (it->is_directory(error)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(error)) files.push_back(it->path());
  }
  if (error) {
    std::fprintf(stderr, "replay: cannot list %s: %s\n", root.c_str(), error.message().c_str());
    std::exit(2);
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<uint8_t> readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    for (const fs::path& path : inputsUnder(argv[i])) {
      std::vector<uint8_t> bytes = readFile(path);
      std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
      // A copy of exactly the input's size, as libFuzzer does: ASan sees a read past its end.
      auto copy = std::make_unique<uint8_t[]>(bytes.size());
      std::copy(bytes.begin(), bytes.end(), copy.get());
      LLVMFuzzerTestOneInput(copy.get(), bytes.size());
      ++count;
    }
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  if (count == 0) {
    std::fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  std::fprintf(stderr, "replay: %zu inputs, all passed, in %lld ms\n", count,
               static_cast<long long>(ms));
  return 0;
}
