#include "worker/gateway/forwarding.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "parsed_request.h"

using namespace phalanx::worker;
using phalanx::test::parsedRequest;

namespace {

std::string upstreamHead(std::string_view bytes, std::string_view ip = "10.0.0.9",
                         std::string_view id = "rid-1") {
  Request r = parsedRequest(bytes);
  std::string out;
  appendUpstreamRequestHead(out, r, {.client_ip = ip, .proto = "http", .request_id = id});
  return out;
}

// The head's field lines (not the request line), "Name: value" each.
std::vector<std::string> lines(const std::string& head) {
  std::vector<std::string> out;
  REQUIRE(head.size() >= 4);
  REQUIRE(head.substr(head.size() - 4) == "\r\n\r\n");
  size_t at = head.find("\r\n") + 2;
  while (at < head.size() - 2) {
    size_t end = head.find("\r\n", at);
    out.push_back(head.substr(at, end - at));
    at = end + 2;
  }
  return out;
}

int count(const std::vector<std::string>& ls, std::string_view prefix) {
  int n = 0;
  for (const std::string& l : ls) n += l.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

bool has(const std::vector<std::string>& ls, std::string_view line) {
  for (const std::string& l : ls) {
    if (l == line) return true;
  }
  return false;
}

// Lowercased field names of a head.
std::vector<std::string> names(const std::vector<std::string>& ls) {
  std::vector<std::string> out;
  for (const std::string& l : ls) {
    std::string n = l.substr(0, l.find(':'));
    for (char& c : n) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    out.push_back(n);
  }
  return out;
}

bool hasName(const std::vector<std::string>& ls, std::string_view lower) {
  for (const std::string& n : names(ls)) {
    if (n == lower) return true;
  }
  return false;
}

void checkNoInjection(const std::string& head) {
  // Exactly one blank line, at the end; no bare CR or LF anywhere.
  CHECK(head.find("\r\n\r\n") == head.size() - 4);
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\r') CHECK((i + 1 < head.size() && head[i + 1] == '\n'));
    if (head[i] == '\n') CHECK((i > 0 && head[i - 1] == '\r'));
  }
}

ResponseHead responseHead(int status, std::vector<std::pair<std::string_view, std::string_view>> fields) {
  ResponseHead h;
  h.status = status;
  h.fields = std::move(fields);
  return h;
}

std::string clientHead(const ResponseHead& head, ClientFraming framing, uint64_t length = 0,
                       ConnectionHeader connection = ConnectionHeader::None,
                       std::string_view id = "rid-1", std::string_view date = "DATE") {
  std::string out;
  appendClientResponseHead(out, head, framing, length, connection, id, date);
  return out;
}

}  // namespace

TEST_CASE("upstream request line: the normalized path and the query as sent, HTTP/1.1") {
  std::string head = upstreamHead("GET /a/./b/../c//d?x=%2F..&y HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(head.rfind("GET /a/c/d?x=%2F..&y HTTP/1.1\r\n", 0) == 0);
  CHECK(upstreamHead("GET /p%41th HTTP/1.1\r\nHost: h\r\n\r\n").rfind("GET /pAth HTTP/1.1\r\n", 0) == 0);
  // An empty query keeps its '?'.
  CHECK(upstreamHead("GET /q? HTTP/1.1\r\nHost: h\r\n\r\n").rfind("GET /q? HTTP/1.1\r\n", 0) == 0);
  // HTTP/1.0 goes upstream as HTTP/1.1.
  CHECK(upstreamHead("DELETE /x HTTP/1.0\r\nHost: h\r\n\r\n").rfind("DELETE /x HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("upstream request line: origin-form for an absolute-form target") {
  std::string head = upstreamHead("GET http://example.com:8080/a/../b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  CHECK(head.rfind("GET /b?q=1 HTTP/1.1\r\n", 0) == 0);
  auto ls = lines(head);
  CHECK(has(ls, "Host: example.com:8080"));
  CHECK(count(ls, "Host:") == 1);
  CHECK(has(ls, "X-Forwarded-Host: example.com:8080"));
  std::string bare = upstreamHead("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
  CHECK(bare.rfind("GET / HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("hop-by-hop fields and those Connection names are dropped, whatever their case") {
  std::string head = upstreamHead(
      "POST /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret ,, x-other,\r\n"
      "connection: ,X-Third\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
      "TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nX-SECRET: 1\r\nX-Other: 2\r\n"
      "x-third: 3\r\nX-Kept: 4\r\nContent-Length: 3\r\n\r\nabc");
  auto ls = lines(head);
  for (const char* n : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                        "x-secret", "x-other", "x-third", "transfer-encoding"}) {
    CAPTURE(n);
    CHECK_FALSE(hasName(ls, n));
  }
  CHECK(has(ls, "X-Kept: 4"));
  CHECK(has(ls, "Host: h"));
  CHECK(has(ls, "Content-Length: 3"));
  CHECK(count(ls, "Content-Length:") == 1);
}

TEST_CASE("Connection naming tabs-separated and mixed-case fields") {
  auto ls = lines(upstreamHead("GET / HTTP/1.1\r\nHost: h\r\nConnection:\tX-A\t,\tx-b\r\nX-a: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n"));
  CHECK_FALSE(hasName(ls, "x-a"));
  CHECK_FALSE(hasName(ls, "x-b"));
  CHECK(has(ls, "X-C: 3"));
}

TEST_CASE("Connection cannot remove Host or the fields phalanx writes") {
  auto ls = lines(upstreamHead(
      "GET / HTTP/1.1\r\nHost: h.example\r\nConnection: Host, X-Forwarded-For, X-Request-Id\r\n"
      "X-Forwarded-For: 1.1.1.1\r\n\r\n",
      "10.0.0.9", "rid-7"));
  CHECK(count(ls, "Host: h.example") == 1);
  CHECK(count(ls, "X-Forwarded-For:") == 1);
  CHECK(has(ls, "X-Request-Id: rid-7"));
  CHECK(count(ls, "X-Forwarded-For: ") == 1);
}

TEST_CASE("Expect, X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id are replaced") {
  auto ls = lines(upstreamHead(
      "POST /x HTTP/1.1\r\nHost: real.host\r\nExpect: 100-continue\r\nX-Forwarded-Proto: https\r\n"
      "x-forwarded-host: evil\r\nX-Request-Id: client-chosen\r\nX-REQUEST-ID: again\r\n"
      "Content-Length: 1\r\n\r\nz",
      "192.0.2.1", "abcdef"));
  CHECK_FALSE(hasName(ls, "expect"));
  CHECK(count(ls, "X-Forwarded-Proto:") == 1);
  CHECK(has(ls, "X-Forwarded-Proto: http"));
  CHECK(count(ls, "X-Forwarded-Host:") == 1);
  CHECK(has(ls, "X-Forwarded-Host: real.host"));
  int ids = 0;
  for (const std::string& n : names(ls)) ids += n == "x-request-id" ? 1 : 0;
  CHECK(ids == 1);
  CHECK(has(ls, "X-Request-Id: abcdef"));
  Request r = parsedRequest("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out;
  appendUpstreamRequestHead(out, r, {.client_ip = "::1", .proto = "https", .request_id = "i"});
  CHECK(has(lines(out), "X-Forwarded-Proto: https"));
  CHECK(has(lines(out), "X-Forwarded-For: ::1"));
}

TEST_CASE("X-Forwarded-For: every client value in order, then the peer") {
  auto ls = lines(upstreamHead(
      "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nX-Other: a\r\n"
      "x-forwarded-for:   3.3.3.3  \r\nX-Forwarded-For:\r\nX-FORWARDED-FOR: 4.4.4.4\r\n\r\n",
      "10.0.0.9"));
  CHECK(count(ls, "X-Forwarded-For:") == 1);
  CHECK_FALSE(hasName(std::vector<std::string>{}, "x"));
  int xff = 0;
  for (const std::string& n : names(ls)) xff += n == "x-forwarded-for" ? 1 : 0;
  CHECK(xff == 1);
  CHECK(has(ls, "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4, 10.0.0.9"));
  CHECK(has(ls, "X-Other: a"));
  // None from the client: the peer alone.
  CHECK(has(lines(upstreamHead("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "10.0.0.9")),
            "X-Forwarded-For: 10.0.0.9"));
}

TEST_CASE("Host: kept once, added for HTTP/1.0 without one") {
  auto with = lines(upstreamHead("GET / HTTP/1.1\r\nHost: Example.COM:81\r\n\r\n"));
  CHECK(count(with, "Host:") == 1);
  CHECK(has(with, "Host: Example.COM:81"));
  auto without = lines(upstreamHead("GET / HTTP/1.0\r\n\r\n"));
  CHECK(count(without, "Host:") == 1);
  CHECK(hasName(without, "host"));
  CHECK_FALSE(hasName(without, "x-forwarded-host"));
  auto ten = lines(upstreamHead("GET / HTTP/1.0\r\nHost: ten\r\n\r\n"));
  CHECK(has(ten, "Host: ten"));
  CHECK(count(ten, "Host:") == 1);
}

TEST_CASE("body framing: Content-Length rewritten, chunked re-declared") {
  auto cl = lines(upstreamHead("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 005\r\n\r\nabcde"));
  CHECK(count(cl, "Content-Length:") == 1);
  CHECK(has(cl, "Content-Length: 5"));
  CHECK_FALSE(hasName(cl, "transfer-encoding"));
  auto ch = lines(upstreamHead(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"));
  CHECK(count(ch, "Transfer-Encoding:") == 1);
  CHECK(has(ch, "Transfer-Encoding: chunked"));
  CHECK_FALSE(hasName(ch, "content-length"));
  CHECK_FALSE(hasName(ch, "t"));
  auto none = lines(upstreamHead("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  CHECK_FALSE(hasName(none, "content-length"));
  CHECK_FALSE(hasName(none, "transfer-encoding"));
  auto zero = lines(upstreamHead("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"));
  // Either no length (no body) or Content-Length: 0; never two.
  CHECK(count(zero, "Content-Length:") <= 1);
}

TEST_CASE("no header injection: whatever the client sent, the head is well formed") {
  const char* requests[] = {
      "GET /a?x=%0d%0a HTTP/1.1\r\nHost: h\r\nX-A: v\tw\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: a\r\nX-Request-Id: x\r\n\r\n",
      "GET /b?%0a%0d%00 HTTP/1.0\r\n\r\n",
  };
  for (const char* r : requests) {
    CAPTURE(r);
    std::string head = upstreamHead(r);
    checkNoInjection(head);
    CHECK(head.find('\0') == std::string::npos);
  }
  // Encoded CR/LF in the query stay encoded.
  std::string head = upstreamHead(requests[0]);
  CHECK(head.rfind("GET /a?x=%0d%0a HTTP/1.1\r\n", 0) == 0);
  // An encoded CR or LF in the path: refused by the parser, or kept encoded.
  struct Keep : RequestParser::Listener {
    int requests = 0;
    std::string path;
    void onRequestBegin(Request&) override {}
    void onHeadersComplete(Request&) override {}
    void onRequest(Request& r) override {
      ++requests;
      path = r.path();
    }
  } keep;
  RequestParser parser(keep, {});
  std::string bytes = "GET /a%0D%0Ab HTTP/1.1\r\nHost: h\r\n\r\n";
  auto outcome = parser.feed(bytes.data(), bytes.size());
  if (outcome == RequestParser::Outcome::Consumed && keep.requests == 1) {
    CHECK(keep.path.find('\r') == std::string::npos);
    CHECK(keep.path.find('\n') == std::string::npos);
  } else {
    CHECK(outcome == RequestParser::Outcome::Error);
  }
}

TEST_CASE("client response: status line, and each framing") {
  ResponseHead h = responseHead(200, {{"Content-Type", "text/plain"},
                                      {"Content-Length", "12"},
                                      {"Transfer-Encoding", "chunked"}});
  std::string len = clientHead(h, ClientFraming::Length, 12);
  CHECK(len.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  auto l = lines(len);
  CHECK(has(l, "Content-Type: text/plain"));
  CHECK(has(l, "Content-Length: 12"));
  CHECK(count(l, "Content-Length:") == 1);
  CHECK_FALSE(hasName(l, "transfer-encoding"));

  auto c = lines(clientHead(h, ClientFraming::Chunked));
  CHECK(has(c, "Transfer-Encoding: chunked"));
  CHECK(count(c, "Transfer-Encoding:") == 1);
  CHECK_FALSE(hasName(c, "content-length"));

  auto u = lines(clientHead(h, ClientFraming::UntilClose, 0, ConnectionHeader::Close));
  CHECK_FALSE(hasName(u, "content-length"));
  CHECK_FALSE(hasName(u, "transfer-encoding"));
  CHECK(has(u, "Connection: close"));

  ResponseHead nc = responseHead(304, {{"ETag", "\"e\""}, {"Content-Length", "99"}});
  std::string none = clientHead(nc, ClientFraming::None);
  CHECK(none.rfind("HTTP/1.1 304 Not Modified\r\n", 0) == 0);
  auto n = lines(none);
  CHECK_FALSE(hasName(n, "content-length"));
  CHECK_FALSE(hasName(n, "transfer-encoding"));
  CHECK(has(n, "ETag: \"e\""));

  // An unknown status keeps its number.
  CHECK(clientHead(responseHead(299, {}), ClientFraming::None).rfind("HTTP/1.1 299 ", 0) == 0);
  CHECK(clientHead(responseHead(103, {{"Link", "<a>"}}), ClientFraming::None).rfind("HTTP/1.1 103 ", 0) == 0);
}

TEST_CASE("client response to HEAD keeps the upstream's Content-Length") {
  ResponseHead h = responseHead(200, {{"content-length", "1234"}, {"X-A", "1"}});
  auto l = lines(clientHead(h, ClientFraming::HeadLength));
  CHECK(has(l, "content-length: 1234"));
  int lengths = 0;
  for (const std::string& nm : names(l)) lengths += nm == "content-length" ? 1 : 0;
  CHECK(lengths == 1);
  CHECK_FALSE(hasName(l, "transfer-encoding"));
  // Without one from the upstream, none is made up.
  auto none = lines(clientHead(responseHead(200, {{"X-A", "1"}}), ClientFraming::HeadLength));
  CHECK_FALSE(hasName(none, "content-length"));
}

TEST_CASE("client response: Date added only when missing") {
  auto added = lines(clientHead(responseHead(200, {}), ClientFraming::Length, 0,
                                ConnectionHeader::None, "i", "Mon, 01 Jan 2024 00:00:00 GMT"));
  CHECK(has(added, "Date: Mon, 01 Jan 2024 00:00:00 GMT"));
  auto kept = lines(clientHead(responseHead(200, {{"date", "Upstream Date"}}), ClientFraming::Length,
                               0, ConnectionHeader::None, "i", "Ours"));
  CHECK(has(kept, "date: Upstream Date"));
  int dates = 0;
  for (const std::string& nm : names(kept)) dates += nm == "date" ? 1 : 0;
  CHECK(dates == 1);
}

TEST_CASE("client response: X-Request-Id replaced") {
  auto l = lines(clientHead(responseHead(200, {{"X-Request-Id", "upstream"}, {"x-request-id", "two"}}),
                            ClientFraming::Length, 0, ConnectionHeader::None, "ours"));
  int ids = 0;
  for (const std::string& nm : names(l)) ids += nm == "x-request-id" ? 1 : 0;
  CHECK(ids == 1);
  CHECK(has(l, "X-Request-Id: ours"));
}

TEST_CASE("client response: the Connection header is the client side's") {
  ResponseHead h = responseHead(200, {{"Connection", "close, X-Hop"}, {"Keep-Alive", "timeout=5"}});
  auto none = lines(clientHead(h, ClientFraming::Length, 1, ConnectionHeader::None));
  CHECK_FALSE(hasName(none, "connection"));
  CHECK_FALSE(hasName(none, "keep-alive"));
  auto ka = lines(clientHead(h, ClientFraming::Length, 1, ConnectionHeader::KeepAlive));
  CHECK(has(ka, "Connection: keep-alive"));
  CHECK(count(ka, "Connection:") == 1);
  auto close = lines(clientHead(h, ClientFraming::Length, 1, ConnectionHeader::Close));
  CHECK(has(close, "Connection: close"));
  CHECK(count(close, "Connection:") == 1);
}

TEST_CASE("client response: upstream hop-by-hop fields and those Connection names are dropped") {
  ResponseHead h = responseHead(
      200, {{"Connection", "X-Hop ,, x-two"}, {"CONNECTION", "x-three"}, {"Keep-Alive", "timeout=5"},
            {"Proxy-Connection", "keep-alive"}, {"TE", "trailers"}, {"Trailer", "X-T"},
            {"Upgrade", "h2c"}, {"Transfer-Encoding", "chunked"}, {"x-hop", "1"},
            {"X-Two", "2"}, {"x-THREE", "3"}, {"X-Kept", "k"}, {"Set-Cookie", "a=1"},
            {"Set-Cookie", "b=2"}});
  auto l = lines(clientHead(h, ClientFraming::Chunked));
  for (const char* n : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                        "x-hop", "x-two", "x-three"}) {
    CAPTURE(n);
    CHECK_FALSE(hasName(l, n));
  }
  CHECK(has(l, "X-Kept: k"));
  CHECK(has(l, "Set-Cookie: a=1"));
  CHECK(has(l, "Set-Cookie: b=2"));
  CHECK(count(l, "Transfer-Encoding:") == 1);
  checkNoInjection(clientHead(h, ClientFraming::Chunked));
}

TEST_CASE("appendChunk and kLastChunk") {
  std::string out;
  appendChunk(out, "hello", 5);
  CHECK(out == "5\r\nhello\r\n");
  out.clear();
  appendChunk(out, "", 0);
  CHECK(out.empty());
  std::string big(300, 'x');
  appendChunk(out, big.data(), big.size());
  CHECK(out == "12c\r\n" + big + "\r\n");
  out.clear();
  std::string sixteen(16, 'y');
  appendChunk(out, sixteen.data(), sixteen.size());
  CHECK(out.rfind("10\r\n", 0) == 0);
  out += kLastChunk;
  CHECK(out.substr(out.size() - 5) == "0\r\n\r\n");
  CHECK(kLastChunk == "0\r\n\r\n");
}
