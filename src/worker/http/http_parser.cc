#include "worker/http/http_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "worker/http/ascii.h"
#include "worker/http/request_target.h"

namespace phalanx::worker {

std::string_view Request::field(std::string_view lower_name) const {
  for (size_t i = 0; i < headerCount(); ++i) {
    auto [name, value] = header(i);
    if (equalsLowercase(name, lower_name)) return value;
  }
  return {};
}

namespace {

// What a connection keeps between requests; a larger request's storage is
// given back once it is answered (a few such connections would otherwise pin
// their peak each).
constexpr size_t kKeepBytes = 4096;
constexpr size_t kKeepFields = 64;

RequestParser& self(llhttp_t* p) {
  return *static_cast<RequestParser*>(p->data);
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

template <typename T>
void giveBackIfLarge(T& storage, size_t keep) {
  if (storage.capacity() > keep) T().swap(storage);
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
    s.on_url_complete = &RequestParser::onUrlComplete;
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

// Runs llhttp over the input in steps. In the Head and Trailers phases a step
// is at most what the phase may still hold, and ends before an obs-fold byte,
// so a fault that comes first in the stream is the one reported, whatever the
// splits. A phase starts where llhttp paused for it (message complete, last
// chunk), so its count starts at an exact byte.
RequestParser::Outcome RequestParser::feed(const char* data, size_t length) {
  if (error_status_ != 0) return Outcome::Error;
  if (stopped_) return Outcome::Stopped;
  if (paused_) {
    paused_ = false;
    releaseLargeStorage();  // the request held while paused has been answered
  }
  const char* at = data;
  const char* end = data + length;
  while (at < end) {
    size_t step = static_cast<size_t>(end - at);
    bool limited = phase_ != Phase::Body;
    bool fold = false;
    if (limited) {
      if (phase_bytes_ >= limits_.max_header_bytes) return refuseOversized();
      step = limitedRun(at, step, &fold);
    }
    uint32_t changes = phase_changes_;
    llhttp_errno_t err = step > 0 ? llhttp_execute(&parser_, at, step) : HPE_OK;
    size_t used = err == HPE_OK ? step : static_cast<size_t>(llhttp_get_error_pos(&parser_) - at);
    if (limited && phase_changes_ == changes) {
      phase_bytes_ += used;
      if (used > 0) last_was_lf_ = at[used - 1] == '\n';
    }
    at += used;
    if (err == HPE_PAUSED) {
      llhttp_resume(&parser_);
      if (stopped_) return Outcome::Stopped;
      if (pause_requested_) {
        pause_requested_ = false;
        paused_ = true;
        consumed_ = static_cast<size_t>(at - data);
        return Outcome::Paused;
      }
      continue;
    }
    if (err != HPE_OK) {
      // llhttp refuses "chunked" followed by another coding itself, mid-value.
      if (error_status_ == 0 && err == HPE_INVALID_TRANSFER_ENCODING) {
        fail(501, "unsupported Transfer-Encoding");
      } else if (error_status_ == 0) {
        fail(400, llhttp_get_error_reason(&parser_));
      }
      return Outcome::Error;
    }
    if (fold && phase_changes_ == changes) {
      fail(400, "obs-fold (a header line starting with whitespace)");
      return Outcome::Error;
    }
  }
  return Outcome::Consumed;
}

// The longest prefix of [at, at + length) the current limited phase may take:
// no more than it still has room for, and stopping before a SP or HTAB that
// starts a line (obs-fold, RFC 9112 5.2), which sets *fold.
size_t RequestParser::limitedRun(const char* at, size_t length, bool* fold) const {
  size_t run = std::min<uint64_t>(length, limits_.max_header_bytes - phase_bytes_);
  if (last_was_lf_ && isBlank(at[0])) {
    *fold = true;
    return 0;
  }
  size_t i = 0;
#if defined(__SSE2__)
  // 16 bytes a step (x86-64 always has SSE2): this runs over every request's head.
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i sp = _mm_set1_epi8(' ');
  const __m128i ht = _mm_set1_epi8('\t');
  for (; i + 17 <= run; i += 16) {
    __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at + i));
    __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at + i + 1));
    __m128i blank = _mm_or_si128(_mm_cmpeq_epi8(next, sp), _mm_cmpeq_epi8(next, ht));
    if (_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, lf), blank)) != 0) break;
  }
#endif
  for (; i + 1 < run; ++i) {
    if (at[i] == '\n' && isBlank(at[i + 1])) {
      *fold = true;
      return i + 1;
    }
  }
  return run;
}

RequestParser::Outcome RequestParser::refuseOversized() {
  if (phase_ == Phase::Trailers) {
    fail(431, "trailers too large");
  } else if (!url_complete_) {
    fail(414, "request target too long");
  } else {
    fail(431, "headers too large");
  }
  return Outcome::Error;
}

int RequestParser::fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return HPE_USER;
}

void RequestParser::enterPhase(Phase phase) {
  phase_ = phase;
  phase_bytes_ = 0;
  last_was_lf_ = false;
  ++phase_changes_;
  if (phase == Phase::Head) url_complete_ = false;
}

void RequestParser::releaseLargeStorage() {
  Request& r = request_;
  giveBackIfLarge(r.header_bytes_, kKeepBytes);
  giveBackIfLarge(r.fields_, kKeepFields);
  giveBackIfLarge(r.target, kKeepBytes);
  giveBackIfLarge(r.path_, kKeepBytes);
}

int RequestParser::onMessageBegin(llhttp_t* p) {
  RequestParser& s = self(p);
  s.in_request_ = true;
  s.in_value_ = false;
  s.transfer_encoding_ = false;
  s.absolute_form_ = false;
  s.host_headers_ = 0;
  Request& r = s.request_;
  r.target.clear();
  r.header_bytes_.clear();
  r.fields_.clear();
  r.path_.clear();
  r.query_at_ = r.query_len_ = 0;
  r.host_ = {};
  r.body_bytes = 0;
  r.framing = Request::BodyFraming::None;
  r.content_length = 0;
  r.has_query_ = false;
  r.expect_continue = false;
  s.listener_.onRequestBegin(r);
  return 0;
}

int RequestParser::onUrl(llhttp_t* p, const char* at, size_t length) {
  self(p).request_.target.append(at, length);
  return 0;
}

int RequestParser::onUrlComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  Request& r = s.request_;
  s.url_complete_ = true;
  if (p->method == HTTP_CONNECT) return 0;  // refused with a 405 once the headers are read
  TargetParts parts;
  const char* why = "";
  if (!splitTarget(r.target, p->method == HTTP_OPTIONS, parts, &why)) return s.fail(400, why);
  if (parts.form == TargetForm::Asterisk) {
    r.path_.assign(parts.path);
  } else if (!normalizePath(parts.path, s.limits_.path, r.path_, &why)) {
    return s.fail(400, why);
  }
  auto offset = [&](std::string_view part) {
    return static_cast<uint32_t>(part.data() - r.target.data());
  };
  if (parts.has_query) {
    r.has_query_ = true;
    r.query_at_ = offset(parts.query);
    r.query_len_ = static_cast<uint32_t>(parts.query.size());
  }
  if (parts.form == TargetForm::Absolute) {
    s.absolute_form_ = true;
    s.authority_ = {offset(parts.authority), static_cast<uint32_t>(parts.authority.size())};
  }
  return 0;
}

// Trailers are read and dropped: the Trailers phase bounds them, and nothing
// here forwards them.
int RequestParser::onHeaderField(llhttp_t* p, const char* at, size_t length) {
  RequestParser& s = self(p);
  if (s.phase_ != Phase::Head) return 0;
  Request& r = s.request_;
  if (s.in_value_ || r.fields_.empty()) {
    Request::Field field;
    field.name.at = static_cast<uint32_t>(r.header_bytes_.size());
    r.fields_.push_back(field);
    s.in_value_ = false;
  }
  r.header_bytes_.append(at, length);
  r.fields_.back().name.length += static_cast<uint32_t>(length);
  return 0;
}

int RequestParser::onHeaderFieldComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  if (s.phase_ != Phase::Head) return 0;
  Request& r = s.request_;
  Request::Field& field = r.fields_.back();
  std::string_view name = r.slice(field.name);
  if (!isToken(name)) return s.fail(400, "invalid header name");
  if (r.fields_.size() > s.limits_.max_headers) return s.fail(431, "too many header fields");
  if (equalsLowercase(name, "host")) {
    ++s.host_headers_;
    s.host_field_ = r.fields_.size() - 1;
  }
  field.value.at = static_cast<uint32_t>(r.header_bytes_.size());
  return 0;
}

int RequestParser::onHeaderValue(llhttp_t* p, const char* at, size_t length) {
  RequestParser& s = self(p);
  if (s.phase_ != Phase::Head) return 0;
  Request& r = s.request_;
  s.in_value_ = true;
  r.header_bytes_.append(at, length);
  r.fields_.back().value.length += static_cast<uint32_t>(length);
  return 0;
}

int RequestParser::onHeaderValueComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  if (s.phase_ != Phase::Head) return 0;
  Request& r = s.request_;
  s.in_value_ = true;  // an empty value gets no onHeaderValue call
  Request::Field& field = r.fields_.back();
  // llhttp drops the whitespace before a value but keeps what trails it.
  while (field.value.length > 0 &&
         isBlank(r.header_bytes_[field.value.at + field.value.length - 1]))
    --field.value.length;
  r.header_bytes_.resize(field.value.at + field.value.length);
  std::string_view name = r.slice(field.name);
  std::string_view value = r.slice(field.value);
  if (equalsLowercase(name, "expect")) {
    if (!equalsLowercase(value, "100-continue")) return s.fail(417, "unsupported Expect");
    r.expect_continue = true;
  } else if (equalsLowercase(name, "transfer-encoding")) {
    return s.checkFraming(value);
  } else if (equalsLowercase(name, "host") && !isValidAuthority(value)) {
    return s.fail(400, "invalid Host header");
  }
  return 0;
}

// RFC 9112 6.1 and 6.3: only "chunked" frames a request body here; any other
// coding list would be read one way by us and maybe another by the upstream.
int RequestParser::checkFraming(std::string_view value) {
  if (parser_.http_major == 1 && parser_.http_minor == 0) {
    return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
  }
  if (parser_.flags & F_CONTENT_LENGTH) {
    return fail(400, "both Content-Length and Transfer-Encoding");
  }
  if (transfer_encoding_ || !equalsLowercase(value, "chunked")) {
    return fail(501, "unsupported Transfer-Encoding");
  }
  transfer_encoding_ = true;
  return 0;
}

// RFC 9112 3.2: an HTTP/1.1 request has exactly one Host; an absolute-form
// target's authority overrides it (3.2.2).
int RequestParser::checkHost() {
  Request& r = request_;
  if (host_headers_ > 1) return fail(400, "more than one Host header");
  if (host_headers_ == 0 && r.http_minor >= 1) return fail(400, "missing Host header");
  if (absolute_form_) {
    takeAuthorityAsHost();
  } else if (host_headers_ == 1) {
    r.host_ = r.fields_[host_field_].value;
  }
  return 0;
}

void RequestParser::takeAuthorityAsHost() {
  Request& r = request_;
  std::string_view authority = std::string_view(r.target).substr(authority_.at, authority_.length);
  if (host_headers_ == 0) {
    Request::Field field;
    field.name = {static_cast<uint32_t>(r.header_bytes_.size()), 4};
    r.header_bytes_.append("Host");
    r.fields_.push_back(field);
    host_field_ = r.fields_.size() - 1;
  }
  r.host_ = {static_cast<uint32_t>(r.header_bytes_.size()), authority_.length};
  r.header_bytes_.append(authority);
  r.fields_[host_field_].value = r.host_;
}

int RequestParser::onHeadersComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  Request& r = s.request_;
  r.method = p->method;
  r.http_major = p->http_major;
  r.http_minor = p->http_minor;
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  // Treat an Upgrade (h2c, websocket) as a plain request: llhttp reads this flag
  // after the callback, and would otherwise hand the rest of the stream to us raw.
  p->upgrade = 0;
  if (r.http_major != 1) return s.fail(505, "HTTP version not supported");
  if (r.method == HTTP_CONNECT) return s.fail(405, "CONNECT is not supported");
  if (s.checkHost() != 0) return HPE_USER;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s.limits_.max_body_bytes) {
    return s.fail(413, "body too large");
  }
  // 100-continue is an HTTP/1.1 mechanism, and only means something before a body.
  if (p->flags & F_CHUNKED) {
    r.framing = Request::BodyFraming::Chunked;
  } else if (p->flags & F_CONTENT_LENGTH) {
    r.framing = Request::BodyFraming::Length;
    r.content_length = p->content_length;
  }
  bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
  r.expect_continue = r.expect_continue && has_body && r.http_minor >= 1;
  s.enterPhase(Phase::Body);
  s.listener_.onHeadersComplete(r);
  return 0;
}

int RequestParser::onBody(llhttp_t* p, const char* at, size_t length) {
  RequestParser& s = self(p);
  s.request_.body_bytes += length;
  if (s.request_.body_bytes > s.limits_.max_body_bytes) return s.fail(413, "body too large");
  s.listener_.onBody(s.request_, at, length);
  return 0;
}

// A chunk announcing more than the body may hold is refused before its bytes
// come. The last chunk starts the trailers: pause there so their count starts
// at an exact byte.
int RequestParser::onChunkHeader(llhttp_t* p) {
  RequestParser& s = self(p);
  if (p->content_length > s.limits_.max_body_bytes - s.request_.body_bytes) {
    return s.fail(413, "body too large");
  }
  if (p->content_length != 0) return 0;
  s.enterPhase(Phase::Trailers);
  return HPE_PAUSED;
}

// Always pauses: the next request's Head phase starts at this exact byte.
int RequestParser::onMessageComplete(llhttp_t* p) {
  RequestParser& s = self(p);
  s.in_request_ = false;
  s.enterPhase(Phase::Head);
  s.listener_.onRequest(s.request_);
  if (!s.pause_requested_ && !s.stopped_) s.releaseLargeStorage();
  return HPE_PAUSED;
}

}  // namespace phalanx::worker
