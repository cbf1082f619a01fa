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
  RequestParser parser{
      recorder, {.max_header_bytes = 1024, .max_body_bytes = 100, .max_headers = 20, .path = {}}};
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
}

TEST_CASE("a request target past max_header_bytes is a 414") {
  CHECK(refusal("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n") == 414);
  CHECK(refusal("GET /" + std::string(2000, 'a')) == 414);  // before the line even ends
}

TEST_CASE("many small headers count against max_header_bytes too") {
  Fixture f;
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 19; ++i) many += "abcdefgh: " + std::string(50, 'v') + "\r\n";
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
  RequestParser parser(
      keeper, {.max_header_bytes = 1024, .max_body_bytes = 100, .max_headers = 20, .path = {}});
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

// ---- What a gateway must read exactly as its upstream would -----------------

namespace {

// Everything a parse produced, to compare parses of the same bytes.
struct Trace : RequestParser::Listener {
  std::string events;
  RequestParser* parser = nullptr;
  void onRequestBegin(Request&) override { events += "begin;"; }
  void onHeadersComplete(Request&) override { events += "headers;"; }
  void onRequest(Request& r) override {
    events += std::string(r.methodName()) + " " + r.target + " path=" + std::string(r.path()) +
              " host=" + std::string(r.host()) + " body=" + std::to_string(r.body_bytes) + ";";
    for (size_t i = 0; i < r.headerCount(); ++i) {
      events += std::string(r.header(i).first) + ":" + std::string(r.header(i).second) + ";";
    }
    if (!r.keep_alive) parser->stop();
  }
};

RequestParser::Limits smallLimits() {
  return {.max_header_bytes = 256, .max_body_bytes = 64, .max_headers = 8, .path = {}};
}

// Feeds `input` in pieces of `piece` bytes (0: all at once); returns the
// events and the final status (0 when not refused).
std::string parseInPieces(std::string_view input, size_t piece, RequestParser::Limits limits) {
  Trace trace;
  RequestParser parser(trace, limits);
  trace.parser = &parser;
  if (piece == 0) piece = input.size();
  RequestParser::Outcome outcome = RequestParser::Outcome::Consumed;
  for (size_t at = 0; at < input.size() && outcome == RequestParser::Outcome::Consumed;
       at += piece) {
    outcome = parser.feed(input.data() + at, std::min(piece, input.size() - at));
  }
  return trace.events + "status=" + std::to_string(parser.errorStatus());
}

int status(std::string_view input) {
  Fixture f;
  return f.feed(input) == RequestParser::Outcome::Error ? f.parser.errorStatus() : 0;
}

const Request* only(std::string_view input, Request& copy) {
  struct Keep : RequestParser::Listener {
    Request* out = nullptr;
    int n = 0;
    void onRequestBegin(Request&) override {}
    void onHeadersComplete(Request&) override {}
    void onRequest(Request& r) override {
      *out = r;
      ++n;
    }
  } keep;
  keep.out = &copy;
  RequestParser parser(keep, {});
  if (parser.feed(input.data(), input.size()) != RequestParser::Outcome::Consumed) return nullptr;
  return keep.n == 1 ? &copy : nullptr;
}

}  // namespace

TEST_CASE("a Transfer-Encoding other than exactly chunked is a 501") {
  const char* post = "POST / HTTP/1.1\r\nHost: x\r\n";
  for (std::string te :
       {"Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: foo, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n", "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding:\r\n"}) {
    CAPTURE(te);
    CHECK(status(post + te + "\r\n0\r\n\r\n") == 501);
  }
  CHECK(status(std::string(post) + "Transfer-Encoding: Chunked \r\n\r\n0\r\n\r\n") == 0);
}

TEST_CASE("Transfer-Encoding on HTTP/1.0 is a 400, and so is it with Content-Length either way") {
  CHECK(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
  CHECK(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, "
               "chunked\r\n\r\n") == 400);
  CHECK(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
               "3\r\n\r\n") == 400);
}

TEST_CASE("obs-fold is a 400 anywhere in the header section, however the bytes arrive") {
  for (std::string folded :
       {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nHost:\r\n evil.example\r\n\r\n", "GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n "
        "b\r\n\r\n"}) {
    CAPTURE(folded);
    for (size_t piece : {0, 1, 2, 3, 7}) {
      CAPTURE(piece);
      CHECK(parseInPieces(folded, piece, {}).ends_with("status=400"));
    }
  }
  // A body may hold LF + SP: that is no header line.
  CHECK(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\na\n b") == 0);
}

TEST_CASE("Host must be an authority: reg-name, IPv4 or IP-literal, and a port") {
  for (std::string_view good : {"example.com", "a.b:8080", "127.0.0.1", "[::1]", "[::1]:80",
                                "xn--bcher-kva.example", "a-b_c~d", "%41b"}) {
    CAPTURE(good);
    CHECK(status("GET / HTTP/1.1\r\nHost: " + std::string(good) + "\r\n\r\n") == 0);
  }
  for (std::string_view bad : {"", "a b", "a/b", "a:", "a:99999", "a:8o", "[::1", "[zz]", "u@h",
                               "a:1:2", "[::1]x", "a\\b", "%4"}) {
    CAPTURE(bad);
    CHECK(status("GET / HTTP/1.1\r\nHost: " + std::string(bad) + "\r\n\r\n") == 400);
  }
}

TEST_CASE("an absolute-form target's authority is the host; a conflicting Host is replaced") {
  Request r;
  REQUIRE(
      only("GET http://a.example:81/x/../y?q=%2e HTTP/1.1\r\nHost: b.example\r\nX: 1\r\n\r\n", r));
  CHECK(r.host() == "a.example:81");
  CHECK(r.path() == "/y");
  CHECK(r.query() == "q=%2e");
  CHECK(r.header(0).first == "Host");
  CHECK(r.header(0).second == "a.example:81");
  CHECK(r.header(1).second == "1");
  REQUIRE(only("GET HTTPS://a.example HTTP/1.0\r\n\r\n", r));  // no Host in HTTP/1.0: one is added
  CHECK(r.host() == "a.example");
  CHECK(r.path() == "/");
  REQUIRE(r.headerCount() == 1);
  CHECK(r.header(0).first == "Host");
  CHECK(status("GET ftp://a.example/ HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
  CHECK(status("GET http://user@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
  CHECK(status("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
}

TEST_CASE("the routing path is normalized; the query stays as sent") {
  Request r;
  REQUIRE(only("GET /public/../admin?a=../b HTTP/1.1\r\nHost: x\r\n\r\n", r));
  CHECK(r.path() == "/admin");
  CHECK(r.query() == "a=../b");
  CHECK(r.target == "/public/../admin?a=../b");
  REQUIRE(only("GET //admin HTTP/1.1\r\nHost: x\r\n\r\n", r));
  CHECK(r.path() == "/admin");
  REQUIRE(only("GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", r));
  CHECK(r.path() == "/a%2Fb");
  CHECK(status("GET /%2e%2e/etc HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
  CHECK(status("GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
  CHECK(status("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
  Fixture keep_slashes;  // merge_slashes off
  RequestParser parser(keep_slashes.recorder, {.max_header_bytes = 1024,
                                               .max_body_bytes = 100,
                                               .max_headers = 20,
                                               .path = {.merge_slashes = false}});
  std::string input = "GET //a HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(parser.feed(input.data(), input.size()) == RequestParser::Outcome::Consumed);
}

TEST_CASE("asterisk-form is for OPTIONS only") {
  Request r;
  REQUIRE(only("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", r));
  CHECK(r.path() == "*");
  CHECK(status("GET * HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
}

TEST_CASE("max_headers fields are fine, one more is a 431") {
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 1; i < 20; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(status(head + "\r\n") == 0);
  CHECK(status(head + "X-Last: v\r\n\r\n") == 431);
}

TEST_CASE("header values lose the whitespace around them") {
  Request r;
  REQUIRE(only("GET / HTTP/1.1\r\nHost:  x \t\r\nX-A:\t a b  \r\nX-Empty:   \r\n\r\n", r));
  CHECK(r.header(0).second == "x");
  CHECK(r.host() == "x");
  CHECK(r.header(1).second == "a b");
  CHECK(r.header(2).second == "");
}

TEST_CASE("trailers are read, dropped, and bounded by max_header_bytes") {
  Fixture f;
  CHECK(f.feed("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
               "X-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n") ==
        RequestParser::Outcome::Consumed);
  CHECK(f.recorder.targets == std::vector<std::string>{"/", "/next"});
  CHECK(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " +
               std::string(2000, 't') + "\r\n\r\n") == 431);
}

TEST_CASE("the same bytes get the same events and status however they are split") {
  // The bug: a malformed byte past max_header_bytes was a 400 when fed whole and
  // a 431 when fed byte by byte.
  std::vector<std::string> inputs = {
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'a') + "\x01\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200, 'a') + "\x01" +
          std::string(100, 'a') + "\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-" + std::string(300, 'n') + " y: v\r\n\r\n",
      "GET /" + std::string(300, 'u') + "\x7f HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n" + std::string(240, 'h') + ": v\r\n\r\n",
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
      "abcGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /d HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: " +
          std::string(300, 't') + "\r\n\r\n",
  };
  for (size_t i = 0; i < 12; ++i) {  // many small headers crossing the limit at every phase
    inputs.push_back("GET / HTTP/1.1\r\nHost: x\r\n" + std::string(i * 20, 'p') +
                     "\r\nX: " + std::string(200, 'v') + "\r\n\r\n");
  }
  for (const std::string& input : inputs) {
    CAPTURE(input);
    std::string whole = parseInPieces(input, 0, smallLimits());
    for (size_t piece : {1, 2, 3, 5, 16, 100}) {
      CAPTURE(piece);
      CHECK(parseInPieces(input, piece, smallLimits()) == whole);
    }
  }
}
