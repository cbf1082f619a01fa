// An upstream's response, parsed with llhttp in response mode.
//
// Contract:
// - reset() before each request: `head_request` tells llhttp a response to
//   HEAD has no body whatever its Content-Length says.
// - feed() parses bytes as they arrive and calls the Listener: onResponseHead() for
//   every response head, interim (1xx) ones included, onResponseBody() for body bytes
//   as they come (chunked bodies already decoded); when the final response is
//   complete feed() returns Complete and consumed() says how many of its bytes
//   belonged to the response (the caller acts on that, outside any callback). Bytes after a
//   complete response are the upstream's fault: the caller does not reuse
//   that connection.
// - The upstream closing the connection: finishEof() completes a
//   close-delimited body (Complete) and is an Error anywhere else.
// - Errors (Error, with reason()): llhttp's refusals, a head over
//   kMaxHeadBytes (counted per head, interim ones apart), a Transfer-Encoding
//   other than one plain "chunked", a status outside 100..599, 101 Switching
//   Protocols (phalanx never forwards an Upgrade), a non-1.x version.
// - HEAD, 1xx, 204 and 304 responses have no body whatever their
//   Content-Length or Transfer-Encoding say.
// - The ResponseHead passed to onResponseHead() is valid until it returns.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phalanx::worker {

struct ResponseHead {
  // How the body is delimited on the upstream connection.
  enum class Framing { None, Length, Chunked, UntilClose };

  int status = 0;
  uint8_t http_minor = 1;
  Framing framing = Framing::None;
  uint64_t content_length = 0;  // Framing::Length
  // The upstream keeps the connection after this response (no Connection:
  // close, not close-delimited, HTTP/1.1 or keep-alive).
  bool keep_alive = true;
  // Fields as received, values trimmed. Views into the parser's storage.
  std::vector<std::pair<std::string_view, std::string_view>> fields;

  bool interim() const { return status >= 100 && status < 200; }
};

class UpstreamResponseParser {
 public:
  // A response head larger than this is refused (a 502): heads are small, and
  // this bounds what an upstream can make a worker hold.
  static constexpr size_t kMaxHeadBytes = 64 * 1024;

  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onResponseHead(const ResponseHead& head) = 0;
    virtual void onResponseBody(const char* data, size_t length) = 0;
  };

  enum class Outcome { Consumed, Complete, Error };

  // A parser lives as long as its upstream connection and serves each
  // exchange in turn: setListener() before reset() (keeping its storage across
  // responses spares their allocations).
  explicit UpstreamResponseParser(Listener* listener = nullptr);
  void setListener(Listener* listener) { listener_ = listener; }
  UpstreamResponseParser(const UpstreamResponseParser&) = delete;
  UpstreamResponseParser& operator=(const UpstreamResponseParser&) = delete;

  void reset(bool head_request);
  Outcome feed(const char* data, size_t length);
  Outcome finishEof();
  size_t consumed() const { return consumed_; }
  const char* reason() const { return reason_; }
  // A response head has started (some byte of the response was received).
  bool started() const { return started_; }

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onHeaderField(llhttp_t* p, const char* at, size_t length);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t length);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t length);
  static int onMessageComplete(llhttp_t* p);
  int fail(const char* reason);

  struct Span {
    uint32_t at = 0;
    uint32_t length = 0;
  };
  llhttp_t parser_{};
  Listener* listener_;
  bool head_request_ = false;
  bool started_ = false;
  bool in_head_ = false;
  bool complete_ = false;
  bool in_value_ = false;
  uint32_t transfer_encodings_ = 0;  // Transfer-Encoding fields in this head
  size_t head_bytes_ = 0;
  size_t consumed_ = 0;
  const char* reason_ = "";
  std::string storage_;  // names and values back to back
  std::vector<std::pair<Span, Span>> spans_;
  ResponseHead head_;
};

}  // namespace phalanx::worker
