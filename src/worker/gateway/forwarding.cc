#include "worker/gateway/forwarding.h"

#include <array>
#include <cstdio>
#include <vector>

#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

// RFC 9110 7.6.1 and the fields phalanx writes itself (see the header).
constexpr std::array<std::string_view, 8> kHopByHop = {
    "connection", "keep-alive", "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade", "content-length"};
constexpr std::array<std::string_view, 4> kReplacedUpstream = {
    "expect", "x-forwarded-proto", "x-forwarded-host", "x-request-id"};

bool inList(std::string_view name, const auto& list) {
  for (std::string_view entry : list) {
    if (equalsLowercase(name, entry)) return true;
  }
  return false;
}

// The field names the Connection fields list ("close" and "keep-alive" are
// options, and harmless to look for among names).
template <typename Fields>
std::vector<std::string_view> connectionOptionsOf(const Fields& fields) {
  std::vector<std::string_view> names;
  for (const auto& [name, value] : fields) {
    if (!equalsLowercase(name, "connection")) continue;
    forEachListElement(value, [&](std::string_view option) { names.push_back(option); });
  }
  return names;
}

void appendField(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

struct RequestFields {
  const Request& request;
  struct Iterator {
    const Request* request;
    size_t i;
    std::pair<std::string_view, std::string_view> operator*() const { return request->header(i); }
    Iterator& operator++() {
      ++i;
      return *this;
    }
    bool operator!=(const Iterator& other) const { return i != other.i; }
  };
  Iterator begin() const { return {&request, 0}; }
  Iterator end() const { return {&request, request.headerCount()}; }
};

}  // namespace

std::vector<std::string_view> connectionOptions(const ResponseHead& head) {
  return connectionOptionsOf(head.fields);
}

bool namedBy(std::string_view name, const std::vector<std::string_view>& options) {
  for (std::string_view option : options) {
    if (equalsIgnoringCase(name, option)) return true;
  }
  return false;
}

void appendUpstreamRequestHead(std::string& out, const Request& request, const ForwardContext& ctx) {
  out += request.methodName();
  out += ' ';
  out += request.path();
  if (request.hasQuery()) {
    out += '?';
    out += request.query();
  }
  out += " HTTP/1.1\r\n";
  RequestFields fields{request};
  std::vector<std::string_view> options = connectionOptionsOf(fields);
  std::string forwarded_for;
  bool has_host = false;
  for (const auto& [name, value] : fields) {
    if (inList(name, kHopByHop) || inList(name, kReplacedUpstream) || namedBy(name, options)) {
      continue;
    }
    if (equalsLowercase(name, "x-forwarded-for")) {
      if (!value.empty()) {
        if (!forwarded_for.empty()) forwarded_for += ", ";
        forwarded_for += value;
      }
      continue;
    }
    if (equalsLowercase(name, "host")) has_host = true;
    appendField(out, name, value);
  }
  // HTTP/1.1 needs a Host; an HTTP/1.0 client may have sent none.
  if (!has_host) appendField(out, "Host", request.host().empty() ? "localhost" : request.host());
  if (!forwarded_for.empty()) forwarded_for += ", ";
  forwarded_for += ctx.client_ip;
  appendField(out, "X-Forwarded-For", forwarded_for);
  appendField(out, "X-Forwarded-Proto", ctx.proto);
  if (!request.host().empty()) appendField(out, "X-Forwarded-Host", request.host());
  appendField(out, "X-Request-Id", ctx.request_id);
  switch (request.framing) {
    case Request::BodyFraming::None: break;
    case Request::BodyFraming::Length:
      appendField(out, "Content-Length", std::to_string(request.content_length));
      break;
    case Request::BodyFraming::Chunked: appendField(out, "Transfer-Encoding", "chunked"); break;
  }
  out += "\r\n";
}

void appendClientResponseHead(std::string& out, const ResponseHead& head, ClientFraming framing,
                              uint64_t length, ConnectionHeader connection,
                              std::string_view request_id, std::string_view date,
                              std::string_view extra) {
  out += "HTTP/1.1 ";
  out += std::to_string(head.status);
  out += ' ';
  out += reasonPhrase(head.status);
  out += "\r\n";
  std::vector<std::string_view> options = connectionOptions(head);
  bool has_date = false;
  for (const auto& [name, value] : head.fields) {
    if (equalsLowercase(name, "content-length") && framing == ClientFraming::HeadLength) {
      appendField(out, name, value);
      continue;
    }
    if (inList(name, kHopByHop) || equalsLowercase(name, "x-request-id") ||
        namedBy(name, options)) {
      continue;
    }
    if (equalsLowercase(name, "date")) has_date = true;
    appendField(out, name, value);
  }
  if (!has_date) appendField(out, "Date", date);
  if (!request_id.empty()) appendField(out, "X-Request-Id", request_id);
  out += extra;
  switch (framing) {
    case ClientFraming::None:
    case ClientFraming::HeadLength:
    case ClientFraming::UntilClose: break;
    case ClientFraming::Length: appendField(out, "Content-Length", std::to_string(length)); break;
    case ClientFraming::Chunked: appendField(out, "Transfer-Encoding", "chunked"); break;
  }
  appendConnectionField(out, connection);
  out += "\r\n";
}

void appendChunk(std::string& out, const char* data, size_t length) {
  if (length == 0) return;
  char size[24];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", length);
  out.append(size, static_cast<size_t>(n));
  out.append(data, length);
  out += "\r\n";
}

}  // namespace phalanx::worker
