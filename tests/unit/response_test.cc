#include "worker/http/response.h"

#include <doctest/doctest.h>

using namespace phalanx::worker;

TEST_CASE("a response carries Server, Content-Length, Date and its headers") {
  Response r = makeResponse(200, "ok\n", {{"Content-Type", "text/plain"}});
  std::string out;
  appendResponse(out, r, "Mon, 23 Nov 2026 10:00:00 GMT", ConnectionHeader::None, false);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\nServer: phalanx\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 GMT\r\n\r\nok\n");
}

TEST_CASE("Connection headers and HEAD") {
  Response r = makeResponse(201, "body");
  std::string out;
  appendResponse(out, r, "D", ConnectionHeader::Close, true);
  CHECK(out ==
        "HTTP/1.1 201 Created\r\nServer: phalanx\r\nContent-Length: 4\r\nDate: D\r\nConnection: "
        "close\r\n\r\n");
  out.clear();
  appendResponse(out, r, "D", ConnectionHeader::KeepAlive, false);
  CHECK(out.find("\r\nConnection: keep-alive\r\n\r\nbody") != std::string::npos);
}

TEST_CASE("204 and 304 have no body and no Content-Length") {
  for (int status : {204, 304}) {
    Response r = makeResponse(status, "ignored");
    CHECK(r.body.empty());
    CHECK(r.head.find("Content-Length") == std::string::npos);
  }
}

TEST_CASE("JSON errors escape their message") {
  Response r = makeJsonError(400, "bad \"quote\"\n");
  CHECK(r.body == "{\"error\":\"bad \\\"quote\\\"\\n\",\"status\":400}\n");
  CHECK(r.head.find("Content-Type: application/json") != std::string::npos);
}

TEST_CASE("reason phrases") {
  CHECK(reasonPhrase(431) == "Request Header Fields Too Large");
  CHECK(reasonPhrase(299) == "Success");
  CHECK(reasonPhrase(599) == "Server Error");
}
