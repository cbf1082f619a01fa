#include "worker/http/request_target.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

// RFC 3986 reg-name: unreserved and sub-delims are 1, '%' (an escape follows)
// is 2, anything else 0. One lookup a byte: every request's Host goes through.
constexpr auto kRegName = [] {
  std::array<uint8_t, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = 1;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = 1;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = 1;
  for (char c : std::string_view("-._~!$&'()*+,;=")) table[static_cast<unsigned char>(c)] = 1;
  table['%'] = 2;
  return table;
}();

bool isRegName(std::string_view host) {
  if (host.empty()) return false;
  for (size_t i = 0; i < host.size(); ++i) {
    uint8_t kind = kRegName[static_cast<unsigned char>(host[i])];
    if (kind == 1) continue;
    if (kind == 0 || i + 2 >= host.size() ||
        hexValue(static_cast<unsigned char>(host[i + 1])) < 0 ||
        hexValue(static_cast<unsigned char>(host[i + 2])) < 0)
      return false;
    i += 2;
  }
  return true;
}

bool isIpv6Literal(std::string_view inside) {
  char text[INET6_ADDRSTRLEN] = {};
  if (inside.empty() || inside.size() >= sizeof text) return false;
  std::memcpy(text, inside.data(), inside.size());
  in6_addr address{};
  return inet_pton(AF_INET6, text, &address) == 1;
}

bool isPort(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

// "http://" or "https://" in any case: the length of the prefix, or 0.
size_t schemePrefix(std::string_view target) {
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (equalsLowercase(target.substr(0, scheme.size()), scheme)) return scheme.size();
  }
  return 0;
}

}  // namespace

bool isValidAuthority(std::string_view text) {
  std::string_view port;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || !isIpv6Literal(text.substr(1, close - 1))) return false;
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    has_port = !rest.empty();
    port = has_port ? rest.substr(1) : rest;
  } else {
    size_t colon = text.find(':');
    has_port = colon != std::string_view::npos;
    if (!isRegName(text.substr(0, colon))) return false;
    if (has_port) port = text.substr(colon + 1);
  }
  return !has_port || isPort(port);
}

bool splitTarget(std::string_view target, bool method_is_options, TargetParts& out,
                 const char** why) {
  out = TargetParts{};
  if (target == "*") {
    if (!method_is_options) {
      *why = "'*' is a target only for OPTIONS";
      return false;
    }
    out.form = TargetForm::Asterisk;
    out.path = target;
    return true;
  }
  if (target.find('#') != std::string_view::npos) {
    *why = "fragment in request target";
    return false;
  }
  std::string_view rest = target;
  if (rest.empty() || rest.front() != '/') {
    size_t scheme = schemePrefix(rest);
    if (scheme == 0) {
      *why = "request target is not a path or an http(s) URL";
      return false;
    }
    rest.remove_prefix(scheme);
    size_t end = rest.find_first_of("/?");
    out.form = TargetForm::Absolute;
    out.authority = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (out.authority.find('@') != std::string_view::npos) {
      *why = "userinfo in request target";
      return false;
    }
    if (!isValidAuthority(out.authority)) {
      *why = "invalid authority in request target";
      return false;
    }
  }
  size_t query = rest.find('?');
  out.path = rest.substr(0, query);
  if (out.path.empty()) out.path = "/";
  if (query != std::string_view::npos) {
    out.has_query = true;
    out.query = rest.substr(query + 1);
  }
  return true;
}

}  // namespace phalanx::worker
