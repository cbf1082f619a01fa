// Differential fuzzing of the request parser: the same bytes must give the same
// requests and the same outcome however the reads split them.
//
// Input: the first byte seeds the split pattern; the rest is what a client sends
// on one connection. The rest is parsed three times, each by a fresh parser with
// small limits (so 431 and 413 are reached often):
//   (a) in one feed(), (b) in random pieces, (c) one byte per feed().
// Each run records what the listener sees (begin, headers complete, and every
// request: method, target, version, keep-alive, 100-continue, headers, body
// bytes) and how it ends (Consumed, Stopped, or Error with its status). Any
// difference prints both records and traps.
//
// The listener does what the connection does: stop() after a request that does
// not keep the connection alive. It never pauses, so Paused must not come back.
//
// Each run also checks what the parser promises about every request it hands
// over (http_parser.h), whatever the split: the header section has exactly one
// Host (HTTP/1.1) or at most one (HTTP/1.0) and not both Content-Length and
// Transfer-Encoding; the version is 1.x and the method not CONNECT; the target,
// the header section and the body stay within the limits.
//
// Errors: all three runs must agree that the input is refused, where, and with
// which status (the parser counts its limits in bytes of the stream, so a bad
// byte past max_header_bytes is a 431 however the bytes come).
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "worker/http/http_parser.h"
#include "splitter.h"

namespace {

using phalanx::worker::Request;
using phalanx::worker::RequestParser;

// Small limits, so 414, 431 and 413 are reached often; the seed's low bit
// turns merge_slashes off.
RequestParser::Limits limitsFor(uint8_t seed) {
  return {.max_header_bytes = 256,
          .max_body_bytes = 64,
          .max_headers = 8,
          .path = {.merge_slashes = (seed & 1) == 0}};
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "http_parser_fuzz: %s\n", what);
  __builtin_trap();
}

bool nameIs(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(name[i])) != lower[i]) return false;
  }
  return true;
}

struct Run {
  std::vector<std::string> events;
  std::string outcome;  // "consumed", "stopped", "error"
  int status = 0;       // errorStatus() after an error
};

class Recorder : public RequestParser::Listener {
 public:
  Recorder(Run& run, const RequestParser::Limits& limits) : run_(run), limits_(limits) {}
  void attach(RequestParser& parser) { parser_ = &parser; }

  void onRequestBegin(Request&) override { run_.events.emplace_back("begin"); }

  // The header section is complete here; what comes later (trailers) is not
  // part of it, so the no-smuggling promises are checked on it now.
  void onHeadersComplete(Request& request) override {
    hosts_ = 0;
    size_t header_bytes = request.target.size();
    bool content_length = false, transfer_encoding = false;
    for (size_t i = 0; i < request.headerCount(); ++i) {
      const auto& h = request.header(i);
      std::string_view name = h.first;
      hosts_ += nameIs(name, "host") ? 1 : 0;
      content_length = content_length || nameIs(name, "content-length");
      transfer_encoding = transfer_encoding || nameIs(name, "transfer-encoding");
      // An absolute-form target's authority replaces Host: it is counted in the target.
      header_bytes += name.size() + (nameIs(name, "host") ? 0 : h.second.size());
    }
    if (hosts_ > 1) fail("a request with more than one Host");
    // +1: an HTTP/1.0 absolute-form request without Host gets one.
    if (request.headerCount() > limits_.max_headers + 1) fail("more fields than max_headers");
    if (content_length && transfer_encoding)
      fail("a request with Content-Length and Transfer-Encoding");
    if (header_bytes > limits_.max_header_bytes) fail("a header section over max_header_bytes");
    run_.events.push_back("headers count=" + std::to_string(request.headerCount()) +
                          " expect_continue=" + (request.expect_continue ? "1" : "0"));
  }

  // The Request is valid only during this call: everything is copied.
  void onRequest(Request& request) override {
    std::string e = "request " + std::to_string(static_cast<int>(request.method)) + " [" +
                    std::string(request.target) + "] HTTP/" +
                    std::to_string(static_cast<int>(request.http_major)) + "." +
                    std::to_string(static_cast<int>(request.http_minor)) +
                    " keep_alive=" + (request.keep_alive ? "1" : "0") +
                    " expect_continue=" + (request.expect_continue ? "1" : "0") +
                    " body_bytes=" + std::to_string(request.body_bytes) + " path=[" +
                    std::string(request.path()) + "] query=[" + std::string(request.query()) +
                    "] host=[" + std::string(request.host()) + "]";
    for (size_t i = 0; i < request.headerCount(); ++i) {
      const auto& h = request.header(i);
      e += " [" + std::string(h.first) + ": " + std::string(h.second) + "]";
    }
    run_.events.push_back(std::move(e));
    if (request.http_major != 1) fail("a request with a version other than 1.x");
    if (request.http_minor >= 1 && (hosts_ != 1 || request.host().empty()))
      fail("an HTTP/1.1 request without a Host");
    if (request.path().empty() || (request.path()[0] != '/' && request.path() != "*"))
      fail("a routing path that is not rooted");
    if (request.method == HTTP_CONNECT) fail("a CONNECT request");
    if (request.body_bytes > limits_.max_body_bytes) fail("a body over max_body_bytes");
    if (!request.keep_alive) parser_->stop();  // as the connection does: it will close
  }

 private:
  Run& run_;
  const RequestParser::Limits& limits_;
  RequestParser* parser_ = nullptr;
  int hosts_ = 0;  // Host fields in the header section of the current request
};

// Feeds `data` in the pieces `pieceSize(left)` chooses; stops at the first
// outcome other than Consumed, and checks that the parser stays there.
template <typename PieceSize>
Run parse(std::string_view data, const RequestParser::Limits& limits, PieceSize pieceSize) {
  Run run;
  Recorder recorder(run, limits);
  RequestParser parser(recorder, limits);
  recorder.attach(parser);
  RequestParser::Outcome outcome = RequestParser::Outcome::Consumed;
  size_t offset = 0;
  while (offset < data.size()) {
    size_t size = pieceSize(data.size() - offset);
    outcome = parser.feed(data.data() + offset, size);
    offset += size;
    if (outcome != RequestParser::Outcome::Consumed) break;
  }
  switch (outcome) {
    case RequestParser::Outcome::Consumed: run.outcome = "consumed"; break;
    case RequestParser::Outcome::Stopped: run.outcome = "stopped"; break;
    case RequestParser::Outcome::Error:
      run.outcome = "error";
      run.status = parser.errorStatus();
      if (run.status < 400 || run.status > 599) fail("an error without a 4xx/5xx status");
      break;
    case RequestParser::Outcome::Paused: fail("Paused, but the listener never pauses");
  }
  // Stopped and failed parsers stay so, whatever comes next.
  if (outcome != RequestParser::Outcome::Consumed && offset < data.size()) {
    size_t events = run.events.size();
    if (parser.feed(data.data() + offset, data.size() - offset) != outcome)
      fail("a stopped or failed parser parsed again");
    if (run.events.size() != events) fail("a stopped or failed parser called its listener");
    if (outcome == RequestParser::Outcome::Error && parser.errorStatus() != run.status)
      fail("the error status changed after the error");
  }
  return run;
}

bool sameOutcome(const Run& a, const Run& b) {
  return a.events == b.events && a.outcome == b.outcome && a.status == b.status;
}

void print(const char* name, const Run& run) {
  std::fprintf(stderr, "--- %s: %s %d\n", name, run.outcome.c_str(), run.status);
  for (const std::string& e : run.events) std::fprintf(stderr, "  %s\n", e.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Splitter splitter(data[0]);
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  RequestParser::Limits limits = limitsFor(data[0]);
  Run whole = parse(input, limits, [](size_t left) { return left; });
  Run pieces = parse(input, limits, [&](size_t left) { return splitter.next(left); });
  Run bytes = parse(input, limits, [](size_t) { return size_t{1}; });

  if (!sameOutcome(whole, pieces) || !sameOutcome(whole, bytes)) {
    print("one feed", whole);
    print("random pieces", pieces);
    print("byte by byte", bytes);
    fail("the split of the input changed what was parsed");
  }
  return 0;
}
