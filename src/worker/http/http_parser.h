// One connection's request parser: llhttp plus the limits phalanx enforces.
//
// Contract:
// - feed() parses bytes as they arrive and calls the Listener as requests
//   begin, finish their headers and complete. A request is handled entirely in
//   onRequest(), so pipelined requests are answered in order.
// - A listener may call stop() from onRequest() (the connection will close);
//   feed() then returns Stopped and ignores the rest of the bytes.
// - Or pause() (its output is backed up): feed() returns Paused and consumed()
//   says how many bytes it took; the caller keeps the rest and feeds it again
//   when ready (the next feed() resumes the parser).
// - The Request handed to onRequest() stays valid and unchanged until the next
//   feed(): a listener that paused may keep a pointer to it meanwhile.
// - Upgrade requests are answered as ordinary requests (phalanx speaks only
//   HTTP/1.x); CONNECT is a 405; a version other than 1.x is a 505.
// - Errors come back as an HTTP status: 400 malformed (including both
//   Content-Length and Transfer-Encoding, a header name that is not a token,
//   and an HTTP/1.1 request without exactly one Host: no smuggling), 413 body over
//   max_body_bytes, 431 request line + headers over max_header_bytes, 417 an
//   Expect other than 100-continue. After an error the parser stays failed.
// - The request body is counted, not kept: no route in this version reads one.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phalanx::worker {

struct Request {
  uint8_t method = 0;  // llhttp_method_t
  std::string target;  // as sent: "/path?query"
  uint8_t http_major = 1;
  uint8_t http_minor = 1;
  bool keep_alive = true;  // what the client asked for, after HTTP/1.0 rules
  bool expect_continue = false;
  uint64_t body_bytes = 0;
  uint64_t started_ns = 0;  // set by the connection when the first byte arrives

  bool isHead() const { return method == HTTP_HEAD; }
  std::string_view methodName() const {
    return llhttp_method_name(static_cast<llhttp_method_t>(method));
  }
  // Headers as received (name case preserved); valid until the next request.
  size_t headerCount() const { return header_count_; }
  const std::pair<std::string, std::string>& header(size_t i) const { return headers_[i]; }

 private:
  friend class RequestParser;
  // Reused between requests so a keep-alive connection stops allocating.
  std::vector<std::pair<std::string, std::string>> headers_;
  size_t header_count_ = 0;
};

class RequestParser {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onRequestBegin(Request& request) = 0;
    // Headers done; body (if any) follows. A 100-continue is answered here.
    virtual void onHeadersComplete(Request& request) = 0;
    virtual void onRequest(Request& request) = 0;
  };

  struct Limits {
    uint64_t max_header_bytes = 16384;
    uint64_t max_body_bytes = 1048576;
  };

  enum class Outcome { Consumed, Paused, Stopped, Error };

  RequestParser(Listener& listener, Limits limits);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  Outcome feed(const char* data, size_t length);
  // From onRequest(): parse nothing more on this connection.
  void stop() { stopped_ = true; }
  // From onRequest(): return from feed() after this request.
  void pause() { pause_requested_ = true; }
  // After Outcome::Paused: the bytes of the last feed() that were parsed.
  size_t consumed() const { return consumed_; }

  // After Outcome::Error: the status to answer with and why.
  int errorStatus() const { return error_status_; }
  const char* errorReason() const { return error_reason_; }

  // Inside a request: its first byte has been seen, its last has not.
  bool inRequest() const { return in_request_; }
  bool inBody() const { return in_request_ && headers_done_; }

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t length);
  static int onHeaderField(llhttp_t* p, const char* at, size_t length);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t length);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onChunkHeader(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t length);
  static int onMessageComplete(llhttp_t* p);

  int fail(int status, const char* reason);
  bool countHeaderBytes(size_t length);

  llhttp_t parser_{};
  Listener& listener_;
  Limits limits_;
  Request request_;
  uint64_t header_bytes_ = 0;
  uint32_t host_headers_ = 0;
  bool in_request_ = false;
  bool headers_done_ = false;
  bool in_value_ = false;  // the last header callback was a value (a new field starts a header)
  bool stopped_ = false;
  bool pause_requested_ = false;
  bool paused_ = false;
  size_t consumed_ = 0;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace phalanx::worker
