#include "worker/gateway/client_address.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>

#include "parsed_request.h"

using namespace phalanx;
using phalanx::test::parsedRequest;

namespace {

std::string clientOf(const char* peer_ip, const std::string& xff_headers,
                     const std::vector<const char*>& trusted_ranges) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, peer_ip, &sin.sin_addr) == 1);
  worker::ClientInfo client{.address = peer_ip, .peer = reinterpret_cast<const sockaddr*>(&sin)};
  std::vector<shared::Cidr> trusted;
  for (const char* range : trusted_ranges) trusted.push_back(*shared::parseCidr(range, nullptr));
  worker::Request request =
      parsedRequest("GET / HTTP/1.1\r\nHost: h\r\n" + xff_headers + "\r\n");
  return std::string(worker::clientAddress(client, request, trusted));
}

}  // namespace

TEST_CASE("client address: X-Forwarded-For only from trusted proxies, right to left") {
  const std::string xff = "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.0.0.2\r\n";
  CHECK(clientOf("10.0.0.1", xff, {}) == "10.0.0.1");  // nobody trusted
  CHECK(clientOf("192.0.2.1", xff, {"10.0.0.0/8"}) == "192.0.2.1");  // peer not trusted
  // trusted hops are skipped; the first untrusted entry is the client, not the
  // leftmost one (which the client wrote itself)
  CHECK(clientOf("10.0.0.1", xff, {"10.0.0.0/8"}) == "203.0.113.7");
  CHECK(clientOf("10.0.0.1", "X-Forwarded-For: 10.0.0.5, 10.0.0.6\r\n", {"10.0.0.0/8"}) ==
        "10.0.0.5");  // every entry trusted: the leftmost
  CHECK(clientOf("10.0.0.1", "X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.0.0.9\r\n",
                 {"10.0.0.0/8"}) == "203.0.113.1");  // several fields read as one list
  CHECK(clientOf("10.0.0.1", "X-Forwarded-For: junk, 10.0.0.3\r\n", {"10.0.0.0/8"}) ==
        "10.0.0.3");  // a non-address ends the walk at the last address before it
  CHECK(clientOf("10.0.0.1", "X-Forwarded-For: 203.0.113.1, junk\r\n", {"10.0.0.0/8"}) ==
        "10.0.0.1");
  CHECK(clientOf("10.0.0.1", "", {"10.0.0.0/8"}) == "10.0.0.1");
}
