#include "worker/http/http_parser.h"

#include <array>

namespace phalanx::worker {

namespace {

RequestParser& self(llhttp_t* p) {
  return *static_cast<RequestParser*>(p->data);
}

// `lower` must be lowercase ASCII. Inline: libc's strncasecmp showed in profiles.
bool equalsLowercase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    if (c != lower[i]) return false;
  }
  return true;
}

// RFC 9110 5.6.2 tchar. llhttp 8.1 built without strict mode lets a space into or
// before a field name ("X-Name : v"), a request-smuggling vector; we refuse it.
constexpr auto kTokenChars = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

bool isToken(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (!kTokenChars[c]) return false;
  }
  return true;
}

}  // namespace

RequestParser::RequestParser(Listener& listener, Limits limits)
    : listener_(listener), limits_(limits) {
  // llhttp keeps a pointer to its settings: one static table for every parser.
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &RequestParser::onMessageBegin;
    s.on_url = &RequestParser::onUrl;
    s.on_header_field = &RequestParser::onHeaderField;
    s.on_header_value = &RequestParser::onHeaderValue;
    s.on_header_field_complete = &RequestParser::onHeaderFieldComplete;
    s.on_header_value_complete = &RequestParser::onHeaderValueComplete;
    s.on_chunk_header = &RequestParser::onChunkHeader;
    s.on_headers_complete = &RequestParser::onHeadersComplete;
    s.on_body = &RequestParser::onBody;
    s.on_message_complete = &RequestParser::onMessageComplete;
    return s;
  }();
  llhttp_init(&parser_, HTTP_REQUEST, &settings);
  parser_.data = this;
}

RequestParser::Outcome RequestParser::feed(const char* data, size_t length) {
  if (error_status_ != 0) return Outcome::Error;
  if (stopped_) return Outcome::Stopped;
  if (paused_) {
    paused_ = false;
    llhttp_resume(&parser_);
  }
  llhttp_errno_t err = llhttp_execute(&parser_, data, length);
  switch (err) {
    case HPE_OK: return Outcome::Consumed;
    case HPE_PAUSED:
      if (stopped_) return Outcome::Stopped;
      paused_ = true;
      consumed_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      return Outcome::Paused;
    default:
      if (error_status_ == 0) fail(400, llhttp_get_error_reason(&parser_));
      return Outcome::Error;
  }
}

int RequestParser::fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return HPE_USER;
}

bool RequestParser::countHeaderBytes(size_t length) {
  header_bytes_ += length;
  return header_bytes_ <= limits_.max_header_bytes;
}

int RequestParser::onMessageBegin(llhttp_t* p) {
  RequestParser& s = self(p);
  s.in_request_ = true;
  s.headers_done_ = false;
  s.in_value_ = false;
  s.header_bytes_ = 0;
  Request& r = s.request_;
  r.target.clear();
  r.header_count_ = 0;
  r.body_bytes = 0;
  r.expect_continue = false;
  s.host_headers_ = 0;
  s.listener_.onRequestBegin(r);
  return 0;
}

int RequestParser::onUrl(llhttp_t* p, const char* at, size_t length) {
  RequestParser& s = self(p);
  // + method and version: what the request line costs beyond its target.
  if (!s.countHeaderBytes(length + (s.request_.target.empty() ? 16 : 0))) {
    return s.fail(431, "request line too large");
  }
  s.request_.target.append(at, length);
  return 0;
}

int RequestParser::onHeaderField(llhttp_t* p, const char* at, size_t length) {
  RequestParser& s = self(p);
  Request& r = s.request_;
  if (!s.countHeaderBytes(length + (s.in_value_ || r.header_count_ == 0 ? 4 : 0))) {
    return s.fail(431, "headers too large");
  }
  if (s.in_value_ || r.header_count_ == 0) {
    // A new header: reuse the slot's strings (and their capacity) if there is one.
    if (r.header_count_ == r.headers_.size()) r.headers_.emplace_back();
    auto& h = r.headers_[r.header_count_++];
    h.first.clear();
    h.second.clear();
    s.in_value_ = false;
  }
  r.headers_[r.header_count_ - 1].first.append(at, length);
  return 0;
}

int RequestParser::onHeaderValue(llhttp_t* p, const char* at, size_t length) {
  RequestParser& s = self(p);
  if (!s.countHeaderBytes(length)) return s.fail(431, "headers too large");
  s.in_value_ = true;
  s.request_.headers_[s.request_.header_count_ - 1].second.append(at, length);
  return 0;
}

int RequestParser::onHeaderFieldComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  const std::string& name = s.request_.headers_[s.request_.header_count_ - 1].first;
  if (!isToken(name)) return s.fail(400, "invalid header name");
  if (equalsLowercase(name, "host")) ++s.host_headers_;
  return 0;
}

int RequestParser::onHeaderValueComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  Request& r = s.request_;
  if (r.header_count_ == 0) return 0;
  const auto& [name, value] = r.headers_[r.header_count_ - 1];
  s.in_value_ = true;  // an empty value gets no onHeaderValue call
  if (equalsLowercase(name, "expect")) {
    if (!equalsLowercase(value, "100-continue")) return s.fail(417, "unsupported Expect");
    r.expect_continue = true;
  }
  return 0;
}

int RequestParser::onHeadersComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  Request& r = s.request_;
  s.headers_done_ = true;
  r.method = p->method;
  r.http_major = p->http_major;
  r.http_minor = p->http_minor;
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  // Treat an Upgrade (h2c, websocket) as a plain request: llhttp reads this flag
  // after the callback, and would otherwise hand the rest of the stream to us raw.
  p->upgrade = 0;
  if (r.http_major != 1) {
    s.fail(505, "HTTP version not supported");
    return -1;
  }
  if (r.method == HTTP_CONNECT) {
    s.fail(405, "CONNECT is not supported");
    return -1;
  }
  // RFC 9112 3.2: an HTTP/1.1 request without exactly one Host is a 400.
  if (s.host_headers_ > 1 || (s.host_headers_ == 0 && r.http_major == 1 && r.http_minor >= 1)) {
    s.fail(400, s.host_headers_ ? "more than one Host header" : "missing Host header");
    return -1;
  }
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s.limits_.max_body_bytes) {
    s.fail(413, "body too large");
    return -1;
  }
  // 100-continue is an HTTP/1.1 mechanism, and only means something before a body.
  bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
  r.expect_continue = r.expect_continue && has_body && r.http_major == 1 && r.http_minor >= 1;
  s.listener_.onHeadersComplete(r);
  return 0;
}

int RequestParser::onBody(llhttp_t* p, const char*, size_t length) {
  RequestParser& s = self(p);
  s.request_.body_bytes += length;
  if (s.request_.body_bytes > s.limits_.max_body_bytes) return s.fail(413, "body too large");
  return 0;
}

// A chunk announcing more than the body may hold is refused before its bytes come.
int RequestParser::onChunkHeader(llhttp_t* p) {
  RequestParser& s = self(p);
  if (p->content_length > s.limits_.max_body_bytes - s.request_.body_bytes) {
    s.fail(413, "body too large");
    return -1;
  }
  return 0;
}

int RequestParser::onMessageComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  s.in_request_ = false;
  s.listener_.onRequest(s.request_);
  bool pause = s.stopped_ || s.pause_requested_;
  s.pause_requested_ = false;
  return pause ? HPE_PAUSED : 0;
}

}  // namespace phalanx::worker
