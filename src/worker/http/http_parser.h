// One connection's request parser: llhttp plus the rules a gateway needs, so
// that phalanx never reads a request differently from the upstream it forwards
// it to (request smuggling) and a client cannot make it hold more than the
// limits allow.
//
// Contract:
// - feed() parses bytes as they arrive and calls the Listener as requests
//   begin, finish their headers, bring body bytes and complete. A listener
//   answers in onRequest(), or, for a request it streams (a proxied one),
//   starts in onHeadersComplete(), takes the body from onBody() and pauses in
//   onRequest() until the answer is done, so pipelined requests are answered
//   in order.
// - A listener may call stop() from onRequest() (the connection will close);
//   feed() then returns Stopped and ignores the rest of the bytes.
// - Or pause() (its output is backed up, or its answer is delayed): feed()
//   returns Paused and consumed() says how many bytes it took; the caller keeps
//   the rest and feeds it again when ready.
// - The Request handed to onRequest() is valid until onRequest() returns; if
//   the listener paused, until the next feed(). Storage a large request needed
//   is given back then, so an idle connection keeps little.
// - The outcome depends on the bytes, never on how they were split across
//   feeds: limits are counted in bytes of the stream, and the first fault in
//   stream order decides the status.
// - Errors come back as an HTTP status (the connection answers and closes):
//   400  malformed: llhttp's refusals (bare LF, bad chunk sizes, CTLs...), a
//        header name that is not a token, obs-fold (a header line starting
//        with SP or HTAB, RFC 9112 5.2), Content-Length with
//        Transfer-Encoding, Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1), an
//        HTTP/1.1 request without exactly one Host, a Host that is no
//        authority, a target none of the forms accept (request_target.h), a
//        path the normalizer refuses (path_normalizer.h)
//   405  CONNECT
//   413  a body over max_body_bytes (by Content-Length, chunk size or total)
//   414  the request line passes max_header_bytes before its target ends
//   417  an Expect other than 100-continue
//   431  the header section passes max_header_bytes, more than max_headers
//        fields, or trailers over max_header_bytes
//   501  a Transfer-Encoding other than exactly "chunked" (repeated headers
//        combined: "gzip, chunked" and "chunked" twice are both refused)
//   505  an HTTP version other than 1.x
//   After an error the parser stays failed.
// - Upgrade requests are answered as ordinary requests (phalanx speaks only
//   HTTP/1.x).
// - For an absolute-form target the target's authority is the host, and a Host
//   header that says otherwise is replaced (RFC 9112 3.2.2).
// - The body is counted and handed to onBody(), never kept here; trailers are
//   read and dropped.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/http/path_normalizer.h"

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
  // How the body is delimited, known once the headers are complete.
  enum class BodyFraming : uint8_t { None, Length, Chunked };
  BodyFraming framing = BodyFraming::None;
  uint64_t content_length = 0;  // BodyFraming::Length

  bool isHead() const { return method == HTTP_HEAD; }
  std::string_view methodName() const {
    return llhttp_method_name(static_cast<llhttp_method_t>(method));
  }
  // The path routes match: the target's path normalized (path_normalizer.h),
  // or "*" for OPTIONS *.
  std::string_view path() const { return path_; }
  // The query as sent, without its '?' (empty when there is none).
  std::string_view query() const { return std::string_view(target).substr(query_at_, query_len_); }
  // The target had a '?' (the query may still be empty).
  bool hasQuery() const { return has_query_; }
  // The authority the request is for: an absolute-form target's, else the
  // Host header's; empty for an HTTP/1.0 request with neither.
  std::string_view host() const { return slice(host_); }
  // Header fields as received (name case kept, value without surrounding
  // whitespace); a replaced Host shows its new value.
  size_t headerCount() const { return fields_.size(); }
  std::pair<std::string_view, std::string_view> header(size_t i) const {
    return {slice(fields_[i].name), slice(fields_[i].value)};
  }
  // The value of the first field named `lower_name` (lowercase), or "" when
  // there is none.
  std::string_view field(std::string_view lower_name) const;

 private:
  friend class RequestParser;
  struct Span {
    uint32_t at = 0;
    uint32_t length = 0;
  };
  struct Field {
    Span name;
    Span value;
  };
  std::string_view slice(Span s) const {
    return std::string_view(header_bytes_).substr(s.at, s.length);
  }

  // Names and values back to back, so storage follows the bytes received
  // rather than the number of fields. Reused between requests.
  std::string header_bytes_;
  std::vector<Field> fields_;
  std::string path_;
  uint32_t query_at_ = 0;
  uint32_t query_len_ = 0;
  bool has_query_ = false;
  Span host_;
};

class RequestParser {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onRequestBegin(Request& request) = 0;
    // Headers done; body (if any) follows. A 100-continue is answered here.
    virtual void onHeadersComplete(Request& request) = 0;
    // Body bytes (chunked bodies decoded), within max_body_bytes, as they are
    // parsed: a listener that streams the body forwards them from here.
    virtual void onBody(Request& request, const char* data, size_t length) {
      (void)request, (void)data, (void)length;
    }
    virtual void onRequest(Request& request) = 0;
  };

  struct Limits {
    uint64_t max_header_bytes = 16384;  // request line + header section, in bytes
    uint64_t max_body_bytes = 1048576;
    uint32_t max_headers = 100;
    PathOptions path;
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
  bool inBody() const { return in_request_ && phase_ != Phase::Head; }

 private:
  // Head runs from the end of the previous request to the end of this one's
  // headers; Trailers from the last chunk to the end of the request. Both are
  // limited to max_header_bytes of the stream; a phase starts exactly where
  // llhttp paused for it, so the count is exact however the bytes arrive.
  enum class Phase { Head, Body, Trailers };

  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t length);
  static int onUrlComplete(llhttp_t* p);
  static int onHeaderField(llhttp_t* p, const char* at, size_t length);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t length);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onChunkHeader(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t length);
  static int onMessageComplete(llhttp_t* p);

  int fail(int status, const char* reason);
  void enterPhase(Phase phase);
  size_t limitedRun(const char* at, size_t length, bool* fold) const;
  Outcome refuseOversized();
  int checkFraming(std::string_view value);
  int checkHost();
  void releaseLargeStorage();
  void takeAuthorityAsHost();

  llhttp_t parser_{};
  Listener& listener_;
  Limits limits_;
  Request request_;
  Phase phase_ = Phase::Head;
  uint64_t phase_bytes_ = 0;    // bytes of the current Head or Trailers phase
  uint32_t phase_changes_ = 0;  // bumped by every phase change (see feed())
  bool last_was_lf_ = false;    // the last byte of the Head or Trailers phase so far was LF
  bool url_complete_ = false;
  bool in_request_ = false;
  bool in_value_ = false;  // the last header callback was a value (a new field starts a header)
  bool transfer_encoding_ = false;
  bool absolute_form_ = false;
  Request::Span authority_;  // an absolute-form target's authority, in request_.target
  uint32_t host_headers_ = 0;
  size_t host_field_ = 0;  // index of the Host field, when host_headers_ == 1
  bool stopped_ = false;
  bool pause_requested_ = false;
  bool paused_ = false;
  size_t consumed_ = 0;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace phalanx::worker
