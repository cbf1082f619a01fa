#include "worker/http/path_normalizer.h"

#include <cstddef>

#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

constexpr const char* kNotAbsolute = "path does not start with '/'";
constexpr const char* kEncodedNul = "encoded NUL in path";
constexpr const char* kControlByte = "control byte in path";
constexpr const char* kBadEscape = "bad percent-encoding in path";
constexpr const char* kClimbs = "path climbs above the root";

bool refuse(const char** why, const char* reason) {
  if (why != nullptr) *why = reason;
  return false;
}

bool isControl(unsigned char c) {
  return c < 0x20 || c == 0x7F;
}

// RFC 3986 2.3; spelled out because <cctype> answers by locale.
bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// The fast path's test, run on every request: one pass, no writes. Anything
// that might change (an escape, an empty, "." or ".." segment) or be refused
// (a control byte) sends the path to the slow path, which decides. `raw[0]` is
// '/', so the scan starts inside the first segment.
bool isAlreadyNormal(std::string_view raw) {
  size_t length = 0;  // bytes of the current segment
  size_t dots = 0;    // of which '.'; length == dots means only dots
  for (size_t i = 1; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c == '%' || isControl(c)) return false;
    if (c == '/') {
      if (length == dots && length <= 2) return false;  // "//", "/./" or "/../"
      length = dots = 0;
      continue;
    }
    ++length;
    dots += c == '.';
  }
  // The last segment may be empty (a trailing '/'), but not "." or "..".
  return !(length == dots && length != 0 && length <= 2);
}

// Appends `segment` to `out` with unreserved escapes decoded and the others
// kept in uppercase. Returns the reason to refuse, or nullptr.
const char* appendDecoded(std::string_view segment, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < segment.size(); ++i) {
    const auto c = static_cast<unsigned char>(segment[i]);
    if (isControl(c)) return kControlByte;
    if (c != '%') {
      out.push_back(static_cast<char>(c));
      continue;
    }
    // A '/' is not a hex digit, so looking only inside the segment refuses "%/" too.
    const int high = i + 1 < segment.size() ? hexValue(segment[i + 1]) : -1;
    const int low = i + 2 < segment.size() ? hexValue(segment[i + 2]) : -1;
    if (high < 0 || low < 0) return kBadEscape;
    const auto byte = static_cast<unsigned char>(high * 16 + low);
    if (byte == 0) return kEncodedNul;
    if (isControl(byte)) return kControlByte;
    if (isUnreserved(byte)) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append({'%', kHex[high], kHex[low]});
    }
    i += 2;
  }
  return nullptr;
}

// RFC 3986 5.2.4 one segment at a time. `out` holds the segments kept so far,
// each as '/' + segment, so removing the last one is cutting at its last '/'
// (a decoded segment never holds a '/': %2F stays encoded). `last` says the
// segment ends the path: a dot-segment there leaves its directory's slash.
bool applySegment(std::string_view segment, bool last, const PathOptions& options, std::string& out,
                  const char** why) {
  // Merging drops the empty segments between slashes, before dot-segments are
  // resolved: "/a//../b" is "/b", as nginx and a file system read it. A trailing
  // empty segment stays: it is the trailing slash.
  if (segment.empty() && !last && options.merge_slashes) return true;
  const size_t mark = out.size();
  out.push_back('/');
  if (const char* reason = appendDecoded(segment, out)) return refuse(why, reason);
  const std::string_view decoded(out.data() + mark + 1, out.size() - mark - 1);
  const bool up = decoded == "..";
  if (!up && decoded != ".") return true;
  out.resize(mark);
  if (up) {
    // RFC 3986 would stay at the root ("/../a" is "/a"); a client that climbs
    // past it is probing, and a 400 tells it so.
    if (out.empty()) return refuse(why, kClimbs);
    out.resize(out.rfind('/'));
  }
  if (last) out.push_back('/');
  return true;
}

}  // namespace

bool normalizePath(std::string_view raw, const PathOptions& options, std::string& out,
                   const char** why) {
  // The caller checked; a cheap guard keeps a mistake there from reading raw[0].
  if (raw.empty() || raw[0] != '/') return refuse(why, kNotAbsolute);
  if (isAlreadyNormal(raw)) {
    out.assign(raw);
    return true;
  }
  // Every step writes at most what it read, so this is the only growth.
  out.clear();
  out.reserve(raw.size());
  size_t start = 1;
  for (;;) {
    const size_t slash = raw.find('/', start);
    const bool last = slash == std::string_view::npos;
    const size_t end = last ? raw.size() : slash;
    if (!applySegment(raw.substr(start, end - start), last, options, out, why)) return false;
    if (last) return true;
    start = end + 1;
  }
}

}  // namespace phalanx::worker
