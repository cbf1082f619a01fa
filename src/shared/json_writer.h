// Writes JSON text: the control socket's answers, /health/status, the access
// log. simdjson only reads, so this small writer is ours.
//
// JsonWriter takes care of commas; the caller of the nesting:
//   JsonWriter w; w.beginObject(); w.field("pid", 12); w.key("workers");
//   w.beginArray(); ... w.endArray(); w.endObject(); w.take();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::shared {

// Appends `text` as the contents of a JSON string (without the quotes). The
// result is valid UTF-8 whatever `text` holds: bytes that are not well-formed
// UTF-8 (shared/utf8.h) are written as \ufffd, one per ill-formed piece.
// Strings given to JsonWriter go through it too.
void appendJsonEscaped(std::string& out, std::string_view text);

class JsonWriter {
 public:
  void beginObject();
  void endObject();
  void beginArray();
  void endArray();
  // Object member name; the next value call writes its value.
  void key(std::string_view name);

  void value(std::string_view text);
  void value(const char* text) { value(std::string_view(text)); }
  void value(const std::string& text) { value(std::string_view(text)); }
  void value(bool flag);
  void value(int64_t number);
  void value(uint64_t number);
  void value(int number) { value(static_cast<int64_t>(number)); }
  void value(unsigned number) { value(static_cast<uint64_t>(number)); }
  void value(double number);
  void null();

  template <typename T>
  void field(std::string_view name, const T& v) {
    key(name);
    value(v);
  }

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void separate();
  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace phalanx::shared
