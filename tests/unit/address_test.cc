#include "shared/address.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>

namespace phalanx::shared {
namespace {

std::string errorFor(std::string_view text) {
  std::string error;
  CHECK_FALSE(parseAddress(text, &error).has_value());
  return error;
}

sockaddr_in asV4(const Address& address) {
  sockaddr_in sin{};
  std::memcpy(&sin, &address.storage, sizeof sin);
  return sin;
}

TEST_CASE("parseAddress: IPv4 fills a sockaddr_in ready for bind") {
  std::string error;
  auto address = parseAddress("127.0.0.1:8080", &error);
  REQUIRE(address.has_value());
  CHECK(error.empty());
  CHECK(address->text == "127.0.0.1:8080");
  CHECK(address->port == 8080);
  CHECK(address->length == sizeof(sockaddr_in));
  CHECK(address->sockaddrPtr()->sa_family == AF_INET);
  sockaddr_in sin = asV4(*address);
  CHECK(ntohs(sin.sin_port) == 8080);
  CHECK(ntohl(sin.sin_addr.s_addr) == INADDR_LOOPBACK);
}

TEST_CASE("parseAddress: '*' is every IPv4 interface, localhost is 127.0.0.1") {
  auto any = parseAddress("*:80", nullptr);
  REQUIRE(any.has_value());
  CHECK(ntohl(asV4(*any).sin_addr.s_addr) == INADDR_ANY);
  CHECK(any->text == "*:80");

  auto local = parseAddress("localhost:65535", nullptr);
  REQUIRE(local.has_value());
  CHECK(ntohl(asV4(*local).sin_addr.s_addr) == INADDR_LOOPBACK);
  CHECK(local->port == 65535);
  CHECK(*local == *parseAddress("127.0.0.1:65535", nullptr));
}

TEST_CASE("parseAddress: bracketed IPv6") {
  auto address = parseAddress("[::1]:9000", nullptr);
  REQUIRE(address.has_value());
  CHECK(address->length == sizeof(sockaddr_in6));
  CHECK(address->port == 9000);
  sockaddr_in6 sin6{};
  std::memcpy(&sin6, &address->storage, sizeof sin6);
  CHECK(sin6.sin6_family == AF_INET6);
  CHECK(ntohs(sin6.sin6_port) == 9000);
  CHECK(std::memcmp(&sin6.sin6_addr, &in6addr_loopback, sizeof sin6.sin6_addr) == 0);
  CHECK(parseAddress("[::]:80", nullptr).has_value());
}

TEST_CASE("parseAddress: equality compares family, address bytes and port, not text") {
  CHECK(*parseAddress("127.0.0.1:80", nullptr) == *parseAddress("localhost:80", nullptr));
  CHECK(*parseAddress("[::1]:80", nullptr) == *parseAddress("[0:0::1]:80", nullptr));
  CHECK_FALSE(*parseAddress("127.0.0.1:80", nullptr) == *parseAddress("127.0.0.1:81", nullptr));
  CHECK_FALSE(*parseAddress("127.0.0.1:80", nullptr) == *parseAddress("127.0.0.2:80", nullptr));
  CHECK_FALSE(*parseAddress("0.0.0.0:80", nullptr) == *parseAddress("[::]:80", nullptr));
}

TEST_CASE("parseAddress: malformed text is refused with the reason") {
  CHECK(errorFor("127.0.0.1") == "expected HOST:PORT");
  CHECK(errorFor("8080") == "expected HOST:PORT");
  CHECK(errorFor(":8080") == "expected HOST:PORT");
  CHECK(errorFor("") == "expected HOST:PORT");
  CHECK(errorFor("[::1]") == "expected HOST:PORT");
  CHECK(errorFor("[::1]8080") == "expected HOST:PORT");
  CHECK(errorFor("::1:8080").find("IPv6 addresses go in brackets") != std::string::npos);
}

TEST_CASE("parseAddress: the port must be 1-65535, digits only") {
  for (const char* text :
       {"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:+80",
        "127.0.0.1: 80", "127.0.0.1:80x", "127.0.0.1:999999", "[::1]:0"}) {
    CAPTURE(text);
    CHECK(errorFor(text) == "port must be 1-65535");
  }
  CHECK(parseAddress("127.0.0.1:1", nullptr)->port == 1);
}

TEST_CASE("parseAddress: hostnames are not resolved") {
  CHECK(errorFor("example.com:80") ==
        "not an IP address: \"example.com\" (hostnames are not resolved)");
  CHECK(errorFor("foo:80") == "not an IP address: \"foo\" (hostnames are not resolved)");
  CHECK(errorFor("1.2.3:80") == "not an IP address: \"1.2.3\" (hostnames are not resolved)");
  CHECK(errorFor("256.0.0.1:80").find("not an IP address") == 0);
  CHECK(errorFor("[foo]:80") == "not an IPv6 address: \"foo\"");
  CHECK(errorFor("[127.0.0.1]:80") == "not an IPv6 address: \"127.0.0.1\"");
}

TEST_CASE("parseAddress: a null error pointer is allowed") {
  CHECK_FALSE(parseAddress("nope", nullptr).has_value());
}

}  // namespace
}  // namespace phalanx::shared
