#include "shared/address.h"

#include <arpa/inet.h>
#include <strings.h>

#include <cstring>

namespace phalanx::shared {

namespace {

bool fail(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
  return false;
}

// Digits only, so "+80", " 80" and "80x" are refused rather than half-read.
std::optional<uint16_t> parsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

void setV4(Address& address, const in_addr& ip) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(address.port);
  sin.sin_addr = ip;
  std::memcpy(&address.storage, &sin, sizeof sin);
  address.length = sizeof sin;
}

void setV6(Address& address, const in6_addr& ip) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(address.port);
  sin6.sin6_addr = ip;
  std::memcpy(&address.storage, &sin6, sizeof sin6);
  address.length = sizeof sin6;
}

// Splits "host:port" or "[v6]:port"; `bracketed` tells which form it was.
bool splitHostPort(std::string_view text, std::string_view& host, std::string_view& port,
                   bool& bracketed) {
  bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  return !host.empty();
}

}  // namespace

bool Address::operator==(const Address& other) const {
  if (storage.ss_family != other.storage.ss_family || port != other.port) return false;
  // Copies rather than casts: sockaddr_storage is not a sockaddr_in to the aliasing rules.
  if (storage.ss_family == AF_INET) {
    sockaddr_in a{}, b{};
    std::memcpy(&a, &storage, sizeof a);
    std::memcpy(&b, &other.storage, sizeof b);
    return a.sin_addr.s_addr == b.sin_addr.s_addr;
  }
  if (storage.ss_family == AF_INET6) {
    sockaddr_in6 a{}, b{};
    std::memcpy(&a, &storage, sizeof a);
    std::memcpy(&b, &other.storage, sizeof b);
    return std::memcmp(&a.sin6_addr, &b.sin6_addr, sizeof a.sin6_addr) == 0;
  }
  return true;
}

std::optional<Address> parseAddress(std::string_view text, std::string* error) {
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  if (!splitHostPort(text, host, port_text, bracketed)) {
    fail(error, "expected HOST:PORT");
    return std::nullopt;
  }
  if (!bracketed && host.find(':') != std::string_view::npos) {
    fail(error, "expected HOST:PORT (IPv6 addresses go in brackets: \"[::1]:8080\")");
    return std::nullopt;
  }
  Address address;
  address.text = std::string(text);
  std::optional<uint16_t> port = parsePort(port_text);
  if (!port) {
    fail(error, "port must be 1-65535");
    return std::nullopt;
  }
  address.port = *port;

  // inet_pton needs a NUL-terminated string.
  std::string host_z(host);
  in_addr v4{};
  in6_addr v6{};
  if (bracketed) {
    if (inet_pton(AF_INET6, host_z.c_str(), &v6) != 1) {
      fail(error, "not an IPv6 address: \"" + host_z + "\"");
      return std::nullopt;
    }
    setV6(address, v6);
  } else if (host == "*") {
    v4.s_addr = htonl(INADDR_ANY);
    setV4(address, v4);
  } else if (strcasecmp(host_z.c_str(), "localhost") == 0) {
    v4.s_addr = htonl(INADDR_LOOPBACK);
    setV4(address, v4);
  } else if (inet_pton(AF_INET, host_z.c_str(), &v4) == 1) {
    setV4(address, v4);
  } else {
    fail(error, "not an IP address: \"" + host_z + "\" (hostnames are not resolved)");
    return std::nullopt;
  }
  return address;
}

}  // namespace phalanx::shared
