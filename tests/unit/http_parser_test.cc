#include "worker/http/http_parser.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using phalanx::worker::Request;
using phalanx::worker::RequestParser;

namespace {

struct Recorder : RequestParser::Listener {
  std::vector<std::string> targets;
  std::vector<bool> keep_alive;
  std::vector<uint64_t> body_bytes;
  int continues = 0;
  int begins = 0;
  bool stop_after_first = false;
  bool pause_each = false;
  RequestParser* parser = nullptr;

  void onRequestBegin(Request&) override { ++begins; }
  void onHeadersComplete(Request& r) override { continues += r.expect_continue ? 1 : 0; }
  void onRequest(Request& r) override {
    targets.push_back(r.target);
    keep_alive.push_back(r.keep_alive);
    body_bytes.push_back(r.body_bytes);
    if (stop_after_first) parser->stop();
    if (pause_each) parser->pause();
  }
};

struct Fixture {
  Recorder recorder;
  RequestParser parser{recorder, {.max_header_bytes = 1024, .max_body_bytes = 100}};
  Fixture() { recorder.parser = &parser; }
  RequestParser::Outcome feed(std::string_view bytes) {
    return parser.feed(bytes.data(), bytes.size());
  }
};

// The status a fresh parser refuses `input` with, or -1 if it is not refused.
int refusal(std::string_view input) {
  Fixture f;
  return f.feed(input) == RequestParser::Outcome::Error ? f.parser.errorStatus() : -1;
}

}  // namespace

TEST_CASE("pipelined requests in one buffer complete in order") {
  Fixture f;
  CHECK(f.feed("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /c HTTP/1.1\r\nHost: x\r\n\r\n") == RequestParser::Outcome::Consumed);
  CHECK(f.recorder.targets == std::vector<std::string>{"/a", "/b", "/c"});
}

TEST_CASE("a request split across reads at every byte still parses") {
  Fixture f;
  std::string request = "POST /upload?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  for (char c : request)
    REQUIRE(f.feed(std::string_view(&c, 1)) == RequestParser::Outcome::Consumed);
  REQUIRE(f.recorder.targets.size() == 1);
  CHECK(f.recorder.targets[0] == "/upload?x=1");
  CHECK(f.recorder.body_bytes[0] == 5);
}

TEST_CASE("keep-alive follows the HTTP version and Connection header") {
  Fixture f;
  f.feed("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
  f.feed("GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  Fixture g;
  g.feed("GET /3 HTTP/1.0\r\n\r\n");
  Fixture h;
  h.feed("GET /4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(f.recorder.keep_alive == std::vector<bool>{true, false});
  CHECK(g.recorder.keep_alive == std::vector<bool>{false});
  CHECK(h.recorder.keep_alive == std::vector<bool>{true});
}

TEST_CASE("chunked bodies are counted") {
  Fixture f;
  CHECK(f.feed("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
               "chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") ==
        RequestParser::Outcome::Consumed);
  REQUIRE(f.recorder.body_bytes.size() == 1);
  CHECK(f.recorder.body_bytes[0] == 11);
}

TEST_CASE("malformed input is a 400") {
  for (std::string_view bad :
       {"GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        // no space in or before a header name: llhttp 8.1 lets both through
        "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Name : v\r\n\r\n"}) {
    Fixture f;
    CAPTURE(bad);
    CHECK(f.feed(bad) == RequestParser::Outcome::Error);
    CHECK(f.parser.errorStatus() == 400);
    CHECK(f.recorder.targets.empty());
  }
}

TEST_CASE("Content-Length together with Transfer-Encoding is refused (no smuggling)") {
  CHECK(refusal("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
                "chunked\r\n\r\n0\r\n\r\n") == 400);
}

TEST_CASE("headers over max_header_bytes are a 431") {
  Fixture f;
  std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  CHECK(f.feed(big) == RequestParser::Outcome::Error);
  CHECK(f.parser.errorStatus() == 431);
  CHECK(refusal("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n") == 431);
}

TEST_CASE("many small headers count against max_header_bytes too") {
  Fixture f;
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 300; ++i) many += "a:\r\n";
  CHECK(f.feed(many + "\r\n") == RequestParser::Outcome::Error);
  CHECK(f.parser.errorStatus() == 431);
}

TEST_CASE("a body over max_body_bytes is a 413, by Content-Length or by chunks") {
  CHECK(refusal("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n") == 413);
  Fixture g;
  std::string chunks = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 11; ++i) chunks += "a\r\n0123456789\r\n";
  CHECK(g.feed(chunks) == RequestParser::Outcome::Error);
  CHECK(g.parser.errorStatus() == 413);
}

TEST_CASE("Expect: 100-continue is reported once headers are done; other expectations are 417") {
  Fixture f;
  f.feed("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  CHECK(f.recorder.continues == 1);
  CHECK(f.recorder.targets.empty());
  f.feed("abc");
  CHECK(f.recorder.targets.size() == 1);
  Fixture g;
  g.feed(
      "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");  // no body: nothing to continue
  CHECK(g.recorder.continues == 0);
  CHECK(refusal("POST / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx") ==
        417);
}

TEST_CASE("stop() from onRequest leaves the rest unparsed") {
  Fixture f;
  f.recorder.stop_after_first = true;
  CHECK(f.feed("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n") ==
        RequestParser::Outcome::Stopped);
  CHECK(f.recorder.targets == std::vector<std::string>{"/a"});
  CHECK(f.feed("GET /c HTTP/1.1\r\nHost: x\r\n\r\n") == RequestParser::Outcome::Stopped);
}

TEST_CASE("inRequest and inBody track the request in progress") {
  Fixture f;
  CHECK_FALSE(f.parser.inRequest());
  f.feed("POST / HTTP/1.1\r\nHost: x\r\nContent-");
  CHECK(f.parser.inRequest());
  CHECK_FALSE(f.parser.inBody());
  f.feed("Length: 2\r\n\r\na");
  CHECK(f.parser.inBody());
  f.feed("b");
  CHECK_FALSE(f.parser.inRequest());
}

TEST_CASE("HTTP/1.1 needs exactly one Host; HTTP/1.0 may omit it") {
  CHECK(refusal("GET / HTTP/1.1\r\n\r\n") == 400);
  CHECK(refusal("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == 400);
  Fixture old;
  CHECK(old.feed("GET / HTTP/1.0\r\n\r\n") == RequestParser::Outcome::Consumed);
  CHECK(old.recorder.targets.size() == 1);
}

TEST_CASE("a chunk larger than the body limit is refused at its size line") {
  CHECK(refusal("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n") == 413);
}

TEST_CASE("error reasons are words, not parser codes") {
  Fixture f;
  f.feed("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n");
  CHECK(std::string_view(f.parser.errorReason()).find("HPE_") == std::string_view::npos);
  CHECK(std::string_view(f.parser.errorReason()).size() > 0);
}

TEST_CASE("pause() returns after the current request and the next feed() continues") {
  Fixture f;
  f.recorder.pause_each = true;
  RequestParser& parser = f.parser;
  std::string input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(parser.feed(input.data(), input.size()) == RequestParser::Outcome::Paused);
  CHECK(f.recorder.targets == std::vector<std::string>{"/a"});
  std::string rest = input.substr(parser.consumed());
  CHECK(rest.starts_with("GET /b"));
  CHECK(parser.feed(rest.data(), rest.size()) == RequestParser::Outcome::Paused);
  CHECK(f.recorder.targets == std::vector<std::string>{"/a", "/b"});
  CHECK(parser.consumed() == rest.size());
}

TEST_CASE(
    "an Upgrade request is an ordinary request and the connection keeps parsing (bug: h2c "
    "stalled)") {
  Fixture f;
  CHECK(f.feed(
            "GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n") ==
        RequestParser::Outcome::Consumed);
  CHECK(f.recorder.targets == std::vector<std::string>{"/a", "/b"});
}

TEST_CASE("CONNECT is a 405 and HTTP/2.0 on an HTTP/1 connection is a 505") {
  CHECK(refusal("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n") == 405);
  CHECK(refusal("GET / HTTP/2.0\r\nHost: x\r\n\r\n") == 505);
}

TEST_CASE(
    "a pause at the very end of the input does not wedge the parser (bug: crash on the next "
    "read)") {
  Fixture f;
  f.recorder.pause_each = true;
  RequestParser& parser = f.parser;
  std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(parser.feed(first.data(), first.size()) == RequestParser::Outcome::Paused);
  CHECK(parser.consumed() == first.size());
  std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(parser.feed(second.data(), second.size()) == RequestParser::Outcome::Paused);
  CHECK(parser.consumed() == second.size());
  CHECK(f.recorder.targets == std::vector<std::string>{"/a", "/b"});
}

TEST_CASE("the request a listener paused on stays as it was until the next feed()") {
  // A delayed answer keeps a pointer to the paused request and answers it later.
  struct Keeper : RequestParser::Listener {
    RequestParser* parser = nullptr;
    const Request* kept = nullptr;
    void onRequestBegin(Request& r) override { r.started_ns = 1234; }
    void onHeadersComplete(Request&) override {}
    void onRequest(Request& r) override {
      kept = &r;
      parser->pause();
    }
  } keeper;
  RequestParser parser(keeper, {.max_header_bytes = 1024, .max_body_bytes = 100});
  keeper.parser = &parser;
  std::string input =
      "HEAD /slow?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n";
  REQUIRE(parser.feed(input.data(), input.size()) == RequestParser::Outcome::Paused);
  REQUIRE(keeper.kept != nullptr);
  const Request& r = *keeper.kept;
  CHECK(r.target == "/slow?x=1");
  CHECK(r.isHead());
  CHECK(r.http_minor == 0);
  CHECK(r.keep_alive);
  CHECK(r.started_ns == 1234);
  CHECK_FALSE(parser.inRequest());
  CHECK(input.substr(parser.consumed()).starts_with("GET /next"));
}
