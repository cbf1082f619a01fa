#include "shared/cidr.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>

#include <cstring>

using namespace phalanx::shared;

namespace {

sockaddr_storage peer(const char* ip) {
  sockaddr_storage storage{};
  if (std::strchr(ip, ':') != nullptr) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    REQUIRE(inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    REQUIRE(inet_pton(AF_INET, ip, &sin->sin_addr) == 1);
  }
  return storage;
}

bool in(const char* range, const char* ip) {
  std::string error;
  auto cidr = parseCidr(range, &error);
  REQUIRE_MESSAGE(cidr.has_value(), error);
  sockaddr_storage p = peer(ip);
  return cidr->contains(reinterpret_cast<const sockaddr*>(&p));
}

}  // namespace

TEST_CASE("cidr: IPv4 and IPv6 ranges, bare addresses, mapped peers") {
  CHECK(in("10.0.0.0/8", "10.255.1.2"));
  CHECK_FALSE(in("10.0.0.0/8", "11.0.0.1"));
  CHECK(in("192.168.1.128/25", "192.168.1.200"));
  CHECK_FALSE(in("192.168.1.128/25", "192.168.1.127"));
  CHECK(in("0.0.0.0/0", "203.0.113.9"));
  CHECK(in("127.0.0.1", "127.0.0.1"));
  CHECK_FALSE(in("127.0.0.1", "127.0.0.2"));
  CHECK(in("2001:db8::/32", "2001:db8:1::5"));
  CHECK_FALSE(in("2001:db8::/32", "2001:db9::5"));
  CHECK(in("::1", "::1"));
  CHECK(in("10.0.0.0/8", "::ffff:10.1.2.3"));  // a dual-stack socket's IPv4 peer
  CHECK_FALSE(in("::/0", "10.1.2.3"));         // families do not mix otherwise
}

TEST_CASE("cidr: strict parsing with messages") {
  std::string error;
  CHECK_FALSE(parseCidr("10.0.0.1/8", &error));
  CHECK(error == "host bits set beyond the prefix in \"10.0.0.1/8\"");
  CHECK_FALSE(parseCidr("10.0.0.0/33", &error));
  CHECK(error == "prefix must be 0-32 in \"10.0.0.0/33\"");
  CHECK_FALSE(parseCidr("::/129", &error));
  CHECK(error == "prefix must be 0-128 in \"::/129\"");
  CHECK_FALSE(parseCidr("example.com", &error));
  CHECK(error == "not an IP address or range: \"example.com\"");
  CHECK_FALSE(parseCidr("10.0.0.0/", &error));
  CHECK_FALSE(parseCidr("10.0.0.0/8x", &error));
  CHECK_FALSE(parseCidr("", &error));
  CHECK(parseCidr("10.0.0.0/8", &error)->prefix == 8);
  CHECK(parseCidr("::1", &error)->prefix == 128);
}
