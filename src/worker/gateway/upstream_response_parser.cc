#include "worker/gateway/upstream_response_parser.h"

#include <algorithm>

#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

UpstreamResponseParser& self(llhttp_t* p) {
  return *static_cast<UpstreamResponseParser*>(p->data);
}

}  // namespace

UpstreamResponseParser::UpstreamResponseParser(Listener* listener) : listener_(listener) {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &UpstreamResponseParser::onMessageBegin;
    s.on_header_field = &UpstreamResponseParser::onHeaderField;
    s.on_header_value = &UpstreamResponseParser::onHeaderValue;
    s.on_header_value_complete = &UpstreamResponseParser::onHeaderValueComplete;
    s.on_headers_complete = &UpstreamResponseParser::onHeadersComplete;
    s.on_body = &UpstreamResponseParser::onBody;
    s.on_message_complete = &UpstreamResponseParser::onMessageComplete;
    return s;
  }();
  llhttp_init(&parser_, HTTP_RESPONSE, &settings);
  parser_.data = this;
}

void UpstreamResponseParser::reset(bool head_request) {
  llhttp_reset(&parser_);
  head_request_ = head_request;
  started_ = false;
  in_head_ = true;
  complete_ = false;
  head_bytes_ = 0;
  consumed_ = 0;
  reason_ = "";
}

int UpstreamResponseParser::fail(const char* reason) {
  reason_ = reason;
  return HPE_USER;
}

UpstreamResponseParser::Outcome UpstreamResponseParser::feed(const char* data, size_t length) {
  if (*reason_ != '\0') return Outcome::Error;
  const char* at = data;
  const char* end = data + length;
  if (length > 0) started_ = true;
  while (at < end) {
    size_t step = static_cast<size_t>(end - at);
    bool limited = in_head_;
    if (limited) {
      if (head_bytes_ >= kMaxHeadBytes) {
        fail("response head too large");
        return Outcome::Error;
      }
      step = std::min(step, kMaxHeadBytes - head_bytes_);
    }
    llhttp_errno_t err = llhttp_execute(&parser_, at, step);
    size_t used = err == HPE_OK ? step : static_cast<size_t>(llhttp_get_error_pos(&parser_) - at);
    if (limited) head_bytes_ += used;
    at += used;
    if (err == HPE_PAUSED) {
      llhttp_resume(&parser_);
      if (!complete_) {
        // An interim response ended: the final head's count starts here, at
        // an exact byte, however the input was split.
        in_head_ = true;
        head_bytes_ = 0;
        continue;
      }
      consumed_ = static_cast<size_t>(at - data);
      return Outcome::Complete;
    }
    if (err != HPE_OK) {
      if (*reason_ == '\0') fail(llhttp_get_error_reason(&parser_));
      return Outcome::Error;
    }
  }
  consumed_ = length;
  return Outcome::Consumed;
}

UpstreamResponseParser::Outcome UpstreamResponseParser::finishEof() {
  if (*reason_ != '\0') return Outcome::Error;
  if (complete_) return Outcome::Complete;
  if (!started_) {
    fail("upstream closed the connection before responding");
    return Outcome::Error;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_PAUSED && complete_) return Outcome::Complete;
  fail("upstream closed the connection mid-response");
  return Outcome::Error;
}

int UpstreamResponseParser::onMessageBegin(llhttp_t* p) {
  UpstreamResponseParser& s = self(p);
  s.in_head_ = true;
  s.in_value_ = false;
  s.transfer_encodings_ = 0;
  s.storage_.clear();
  s.spans_.clear();
  return 0;
}

int UpstreamResponseParser::onHeaderField(llhttp_t* p, const char* at, size_t length) {
  UpstreamResponseParser& s = self(p);
  if (!s.in_head_) return 0;  // trailers: read and dropped
  if (s.in_value_ || s.spans_.empty()) {
    s.spans_.push_back({{static_cast<uint32_t>(s.storage_.size()), 0}, {}});
    s.in_value_ = false;
  }
  s.storage_.append(at, length);
  s.spans_.back().first.length += static_cast<uint32_t>(length);
  s.spans_.back().second.at = static_cast<uint32_t>(s.storage_.size());
  return 0;
}

int UpstreamResponseParser::onHeaderValue(llhttp_t* p, const char* at, size_t length) {
  UpstreamResponseParser& s = self(p);
  if (!s.in_head_) return 0;
  s.in_value_ = true;
  s.storage_.append(at, length);
  s.spans_.back().second.length += static_cast<uint32_t>(length);
  return 0;
}

int UpstreamResponseParser::onHeaderValueComplete(llhttp_t* p) {
  UpstreamResponseParser& s = self(p);
  if (!s.in_head_ || s.spans_.empty()) return 0;
  s.in_value_ = true;  // an empty value gets no onHeaderValue call
  auto& [name, value] = s.spans_.back();
  while (value.length > 0 && isBlank(s.storage_[value.at + value.length - 1])) --value.length;
  // Only a single, plain "chunked": any other coding would reach the client
  // decoded of its chunks but still in that coding, with nothing to say so.
  std::string_view name_text = std::string_view(s.storage_).substr(name.at, name.length);
  if (equalsLowercase(name_text, "transfer-encoding")) {
    std::string_view value_text = std::string_view(s.storage_).substr(value.at, value.length);
    if (++s.transfer_encodings_ > 1 || !equalsLowercase(value_text, "chunked")) {
      return s.fail("upstream used a transfer coding other than chunked");
    }
  }
  return 0;
}

// Return 1 tells llhttp the response has no body (a response to HEAD).
int UpstreamResponseParser::onHeadersComplete(llhttp_t* p) {
  UpstreamResponseParser& s = self(p);
  s.in_head_ = false;
  ResponseHead& h = s.head_;
  h.status = p->status_code;
  h.http_minor = p->http_minor;
  if (p->http_major != 1) return s.fail("upstream answered with a version other than HTTP/1.x");
  if (h.status < 100 || h.status > 599) return s.fail("upstream status out of range");
  if (h.status == 101) return s.fail("upstream switched protocols");
  bool no_body = s.head_request_ || h.interim() || h.status == 204 || h.status == 304;
  h.content_length = 0;
  if (no_body) {
    h.framing = ResponseHead::Framing::None;
  } else if (p->flags & F_CHUNKED) {
    h.framing = ResponseHead::Framing::Chunked;
  } else if (p->flags & F_TRANSFER_ENCODING) {
    return s.fail("upstream used a transfer coding other than chunked");
  } else if (p->flags & F_CONTENT_LENGTH) {
    h.content_length = p->content_length;
    h.framing = p->content_length > 0 ? ResponseHead::Framing::Length : ResponseHead::Framing::None;
  } else {
    h.framing = ResponseHead::Framing::UntilClose;
  }
  bool persistent = p->http_minor >= 1 ? !(p->flags & F_CONNECTION_CLOSE)
                                       : (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
  h.keep_alive = persistent && h.framing != ResponseHead::Framing::UntilClose;
  h.fields.clear();
  for (const auto& [name, value] : s.spans_) {
    h.fields.emplace_back(std::string_view(s.storage_).substr(name.at, name.length),
                          std::string_view(s.storage_).substr(value.at, value.length));
  }
  s.listener_->onResponseHead(h);
  // 1: no body, whatever Content-Length or Transfer-Encoding say (HEAD, 1xx,
  // 204, 304 carry none); llhttp then goes on to the next response.
  return no_body ? 1 : 0;
}

int UpstreamResponseParser::onBody(llhttp_t* p, const char* at, size_t length) {
  self(p).listener_->onResponseBody(at, length);
  return 0;
}

// Interim responses end here too: parsing goes on to the final one. The final
// one pauses, so feed() can tell its last byte.
int UpstreamResponseParser::onMessageComplete(llhttp_t* p) {
  UpstreamResponseParser& s = self(p);
  if (s.head_.interim()) {
    // An interim response never ends the connection: the final one decides.
    // llhttp asks llhttp_should_keep_alive() once this returns; left alone, a
    // 1xx with "Connection: close" (or an HTTP/1.0 one without keep-alive)
    // would put it in its closed state, where it drops every later byte, the
    // final response included. (It clears the flags right after.)
    p->flags = static_cast<uint16_t>((p->flags & ~F_CONNECTION_CLOSE) | F_CONNECTION_KEEP_ALIVE);
  } else {
    s.complete_ = true;
  }
  return HPE_PAUSED;
}

}  // namespace phalanx::worker
