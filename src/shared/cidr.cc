#include "shared/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace phalanx::shared {

namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool prefixEqual(const uint8_t* a, const uint8_t* b, unsigned bits) {
  unsigned whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool fail(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
  return false;
}

}  // namespace

int parseIp(std::string_view text, uint8_t out[16]) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return 0;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  if (inet_pton(AF_INET, buffer, out) == 1) return AF_INET;
  if (inet_pton(AF_INET6, buffer, out) == 1) return AF_INET6;
  return 0;
}

std::optional<Cidr> parseCidr(std::string_view text, std::string* error) {
  Cidr cidr;
  cidr.text = std::string(text);
  std::string_view ip = text;
  std::optional<unsigned> prefix;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    ip = text.substr(0, slash);
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) {
      fail(error, "expected ADDRESS/PREFIX like \"10.0.0.0/8\", got \"" + cidr.text + "\"");
      return std::nullopt;
    }
    unsigned value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        fail(error, "expected ADDRESS/PREFIX like \"10.0.0.0/8\", got \"" + cidr.text + "\"");
        return std::nullopt;
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    prefix = value;
  }
  cidr.family = parseIp(ip, cidr.bytes);
  if (cidr.family == 0) {
    fail(error, "not an IP address or range: \"" + cidr.text + "\"");
    return std::nullopt;
  }
  unsigned max_bits = cidr.family == AF_INET ? 32 : 128;
  if (prefix && *prefix > max_bits) {
    fail(error, "prefix must be 0-" + std::to_string(max_bits) + " in \"" + cidr.text + "\"");
    return std::nullopt;
  }
  cidr.prefix = static_cast<uint8_t>(prefix.value_or(max_bits));
  uint8_t network[16] = {};
  std::memcpy(network, cidr.bytes, max_bits / 8);
  // Host bits set below the prefix: "10.0.0.1/8" is most likely a typo for /32.
  for (unsigned bit = cidr.prefix; bit < max_bits; ++bit) {
    if (cidr.bytes[bit / 8] & (0x80 >> (bit % 8))) {
      fail(error, "host bits set beyond the prefix in \"" + cidr.text + "\"");
      return std::nullopt;
    }
  }
  return cidr;
}

bool Cidr::contains(int ip_family, const uint8_t* ip) const {
  if (ip_family == family) return prefixEqual(ip, bytes, prefix);
  if (ip_family == AF_INET6 && family == AF_INET && std::memcmp(ip, kV4MappedPrefix, 12) == 0) {
    return prefixEqual(ip + 12, bytes, prefix);
  }
  return false;
}

bool Cidr::contains(const sockaddr* peer) const {
  if (peer->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(peer);
    return contains(AF_INET, reinterpret_cast<const uint8_t*>(&sin->sin_addr));
  }
  if (peer->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(peer);
    return contains(AF_INET6, reinterpret_cast<const uint8_t*>(&sin6->sin6_addr));
  }
  return false;
}

bool anyContains(const std::vector<Cidr>& ranges, const sockaddr* peer) {
  for (const Cidr& range : ranges) {
    if (range.contains(peer)) return true;
  }
  return false;
}

}  // namespace phalanx::shared
