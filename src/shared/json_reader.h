// Reading a parsed JSON document (simdjson DOM) into plain values, for schemas
// written by hand.
//
// Contract:
// - Every error is collected in an Errors, one line each, prefixed with its JSON
//   path (`limits.max_header_bytes: ...`, `routes[2].upstream: ...`, or
//   `top level: ...`); reading goes on after an error, so one pass finds them all.
// - An ObjectReader reports duplicate keys at once and, when it goes out of
//   scope, every key nobody asked for as "unknown key", with a "did you mean"
//   hint when the key is a near miss of one that was asked for.
// - Nothing here throws on bad input; a reader that fails leaves its output
//   untouched and returns false or nullopt.
// - Readers hold views into the simdjson document: it must outlive them.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phalanx::shared::json {

using simdjson::dom::element;

inline constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
inline constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

// The JSON name of a value's type, for messages: "array", "number", "null", ...
const char* jsonType(element value);
bool isNumber(element value);
// `text` in double quotes, as a message quotes a value from the file.
std::string inQuotes(std::string_view text);
// "path[index]".
std::string indexPath(const std::string& path, size_t index);

// Collects error lines. Keys and values come from the file and may hold any
// byte; control characters are escaped here, once, so a line stays one line.
class Errors {
 public:
  // An empty path means the document itself and reads "top level".
  void add(std::string_view path, std::string_view what);
  size_t size() const { return lines_.size(); }
  std::vector<std::string> take() { return std::move(lines_); }

 private:
  std::vector<std::string> lines_;
};

enum class AtLeast { Zero, One };

// JSON has one number type; simdjson hands back int64, uint64 or double.
// "1000.0" and "1e3" are accepted as the integers they are.
std::optional<uint64_t> readUnsigned(Errors& errors, const std::string& path, element value,
                                     AtLeast floor, uint64_t max);
std::optional<double> readNumber(Errors& errors, const std::string& path, element value);
// Sets `out` and returns true only for a string, and a non-empty one unless
// `allow_empty`.
bool readString(Errors& errors, const std::string& path, element value, std::string& out,
                bool allow_empty = false);

// Reads one JSON object. Every key a parser asks for becomes a known key; when
// the reader goes out of scope, keys nobody asked for are reported, so a
// misspelled key is never silently ignored.
class ObjectReader {
 public:
  ObjectReader(Errors& errors, std::string path, element value);
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;
  ~ObjectReader() { reportUnknownKeys(); }

  // False when the value was not an object (already reported).
  bool valid() const { return valid_; }
  Errors& errors() { return errors_; }
  std::string pathOf(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  // An error about the object as a whole.
  void fail(std::string_view what) { errors_.add(path_, what); }

  std::optional<element> get(std::string_view key);
  // As get(), and reports "required" when the key is absent.
  std::optional<element> required(std::string_view key);
  // For objects whose keys are names (upstreams, headers): every key is known.
  const std::vector<std::pair<std::string_view, element>>& entries() {
    all_known_ = true;
    return fields_;
  }

  // Each reader below leaves `out` alone when the key is absent and returns
  // true only when the key was present and valid.
  bool u32(std::string_view key, uint32_t& out, AtLeast floor = AtLeast::One);
  bool u64(std::string_view key, uint64_t& out, AtLeast floor = AtLeast::One,
           uint64_t max = kMaxU64);
  bool number(std::string_view key, double& out);
  bool boolean(std::string_view key, bool& out);
  bool string(std::string_view key, std::string& out, bool allow_empty = false);
  // A string that must be one of `known`.
  bool choice(std::string_view key, std::string& out,
              std::initializer_list<std::string_view> known);

 private:
  void reportUnknownKeys();

  Errors& errors_;
  std::string path_;
  bool valid_ = false;
  bool all_known_ = false;
  std::vector<std::pair<std::string_view, element>> fields_;  // first of each key, in file order
  std::vector<std::string_view> asked_;
};

// Calls `each(item_path, item)` for every item of the array at `path`.
template <typename Each>
void forEachItem(Errors& errors, const std::string& path, element value, bool non_empty,
                 Each each) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    errors.add(path, std::string("expected an array, got ") + jsonType(value));
    return;
  }
  if (non_empty && array.size() == 0) errors.add(path, "must not be empty");
  size_t index = 0;
  for (element item : array) each(indexPath(path, index++), item);
}

// Reads an object of named entries (upstreams, headers...) into `out`, calling
// `parse_entry(entry_path, entry, out[name])` for each; an empty name is an
// error. A name is recorded even when its entry has errors, so references to it
// elsewhere do not report a second, misleading "no such name".
template <typename T, typename ParseEntry>
void readNamed(Errors& errors, const std::string& path, element value,
               std::map<std::string, T>& out, ParseEntry parse_entry) {
  ObjectReader r(errors, path, value);
  for (const auto& [name, entry] : r.entries()) {
    if (name.empty()) {
      errors.add(path, "names must not be empty");
      continue;
    }
    parse_entry(r.pathOf(name), entry, out[std::string(name)]);
  }
}

}  // namespace phalanx::shared::json
