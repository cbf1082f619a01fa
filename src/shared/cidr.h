// Address ranges as written in the config ("10.0.0.0/8", "::1/128", or a bare
// address for one host), and the test a request's peer is checked with:
// trusted_proxies (whose X-Forwarded-For is believed) and a route's "allow".
//
// Contract:
// - parseCidr() is strict: the address must be an IPv4 or IPv6 literal and the
//   prefix 0..32 or 0..128; host bits beyond the prefix must be zero
//   ("10.0.0.1/8" is refused: it usually means a typo).
// - contains() compares raw bytes, no allocation; an IPv4-mapped IPv6 peer
//   (::ffff:10.1.2.3, what a dual-stack socket reports) matches IPv4 ranges.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::shared {

struct Cidr {
  std::string text;  // as written, for messages and views
  int family = 0;    // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  uint8_t prefix = 0;

  // `ip` holds 4 (IPv4) or 16 (IPv6) bytes in network order.
  bool contains(int ip_family, const uint8_t* ip) const;
  bool contains(const sockaddr* peer) const;
};

std::optional<Cidr> parseCidr(std::string_view text, std::string* error);

// Whether `peer` is in any of `ranges` (false for an empty list).
bool anyContains(const std::vector<Cidr>& ranges, const sockaddr* peer);

// Parses an IP literal (no port, no brackets) into 4 or 16 bytes; returns the
// family, or 0 when `text` is not one.
int parseIp(std::string_view text, uint8_t out[16]);

}  // namespace phalanx::shared
