// A Request as the parser makes it, for the tests of what consumes one
// (Request's derived fields are the parser's to fill).
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "worker/http/http_parser.h"

namespace phalanx::test {

inline worker::Request parsedRequest(std::string_view bytes) {
  struct Keep : worker::RequestParser::Listener {
    worker::Request kept;
    int requests = 0;
    void onRequestBegin(worker::Request&) override {}
    void onHeadersComplete(worker::Request&) override {}
    void onRequest(worker::Request& r) override {
      kept = r;
      ++requests;
    }
  } keep;
  worker::RequestParser parser(keep, {});
  auto outcome = parser.feed(bytes.data(), bytes.size());
  REQUIRE_MESSAGE(outcome == worker::RequestParser::Outcome::Consumed, parser.errorReason());
  REQUIRE(keep.requests == 1);
  return keep.kept;
}

// `METHOD target HTTP/1.1` with a Host header.
inline worker::Request parsedRequest(std::string_view method, std::string_view target) {
  return parsedRequest(std::string(method) + " " + std::string(target) +
                       " HTTP/1.1\r\nHost: test\r\n\r\n");
}

}  // namespace phalanx::test
