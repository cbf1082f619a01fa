// Differential fuzzing of the upstream response parser: the same bytes must give
// the same heads, body and outcome however the reads split them.
//
// Input: the first byte chooses the request kind (bit 0: a response to HEAD)
// and seeds the split pattern (the rest of its bits); the rest is what an
// upstream sends on one connection. It is parsed three times, each by a fresh
// parser: (a) in one feed(), (b) in random pieces, (c) one byte per feed().
// Feeding stops at the first outcome other than Consumed; after Consumed,
// finishEof() (the upstream closed). Each run records every head (status,
// version, framing, length, keep-alive, fields), the body bytes, the outcome
// and, for Complete, where in the input the response ended. Any difference
// prints the three records and traps.
//
// Each run also checks the parser's promises: consumed() never exceeds a feed;
// a Complete response's last head is final (not 1xx, not 101) with a 1.x
// version; the body matches the framing (none for HEAD, 204, 304; exactly
// content_length for Length); a failed parser stays failed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "worker/gateway/upstream_response_parser.h"
#include "splitter.h"

namespace {

using phalanx::worker::ResponseHead;
using phalanx::worker::UpstreamResponseParser;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "upstream_response_fuzz: %s\n", what);
  __builtin_trap();
}

struct Run {
  std::vector<std::string> heads;
  std::string body;
  std::string outcome;
  size_t end = 0;
  // The last head, for the framing checks.
  int status = 0;
  ResponseHead::Framing framing = ResponseHead::Framing::None;
  uint64_t content_length = 0;
  uint64_t body_after_last_head = 0;
};

class Recorder : public UpstreamResponseParser::Listener {
 public:
  explicit Recorder(Run& run) : run_(run) {}
  void onResponseHead(const ResponseHead& head) override {
    std::string e = "head " + std::to_string(head.status) + " 1." +
                    std::to_string(static_cast<int>(head.http_minor)) + " framing=" +
                    std::to_string(static_cast<int>(head.framing)) +
                    " length=" + std::to_string(head.content_length) +
                    " keep_alive=" + (head.keep_alive ? "1" : "0");
    for (const auto& [name, value] : head.fields) {
      e += " [" + std::string(name) + ": " + std::string(value) + "]";
    }
    run_.heads.push_back(std::move(e));
    run_.status = head.status;
    run_.framing = head.framing;
    run_.content_length = head.content_length;
    run_.body_after_last_head = 0;
  }
  void onResponseBody(const char* data, size_t length) override {
    if (length == 0) fail("an empty onResponseBody");
    run_.body.append(data, length);
    run_.body_after_last_head += length;
  }

 private:
  Run& run_;
};

template <typename PieceSize>
Run parse(std::string_view data, bool head_request, PieceSize pieceSize) {
  using Outcome = UpstreamResponseParser::Outcome;
  Run run;
  Recorder recorder(run);
  UpstreamResponseParser parser(&recorder);
  parser.reset(head_request);
  Outcome outcome = Outcome::Consumed;
  size_t offset = 0;
  while (offset < data.size()) {
    size_t size = pieceSize(data.size() - offset);
    outcome = parser.feed(data.data() + offset, size);
    if (outcome == Outcome::Complete) {
      if (parser.consumed() > size) fail("consumed() beyond the feed");
      offset += parser.consumed();
      break;
    }
    offset += size;
    if (outcome == Outcome::Error) break;
    if (parser.consumed() != size) fail("Consumed without consuming everything");
  }
  if (outcome == Outcome::Consumed) {
    if (parser.started() != !data.empty()) fail("started() does not say whether bytes came");
    outcome = parser.finishEof();
  }
  switch (outcome) {
    case Outcome::Consumed: fail("finishEof() returned Consumed");
    case Outcome::Complete: run.outcome = "complete"; break;
    case Outcome::Error:
      run.outcome = "error";
      if (*parser.reason() == '\0') fail("an error without a reason");
      if (parser.feed("HTTP/1.1 200 OK\r\n\r\n", 19) != Outcome::Error ||
          parser.finishEof() != Outcome::Error)
        fail("a failed parser parsed again");
      break;
  }
  run.end = offset;
  if (outcome == Outcome::Complete) {
    if (run.heads.empty()) fail("Complete without a head");
    if (run.status < 200 || run.status > 599 || run.status == 101) fail("Complete on a non-final status");
    bool no_body = head_request || run.status == 204 || run.status == 304;
    if (no_body && run.framing != ResponseHead::Framing::None) fail("a bodiless response with framing");
    if (run.framing == ResponseHead::Framing::None && run.body_after_last_head != 0)
      fail("body bytes for a response without body");
    if (run.framing == ResponseHead::Framing::Length && run.body_after_last_head != run.content_length)
      fail("a Content-Length body of another length");
  }
  return run;
}

bool same(const Run& a, const Run& b) {
  if (a.outcome != b.outcome || a.heads != b.heads || a.body != b.body) return false;
  return a.outcome != "complete" || a.end == b.end;
}

void print(const char* name, const Run& run) {
  std::fprintf(stderr, "--- %s: %s end=%zu body=%zu bytes\n", name, run.outcome.c_str(), run.end,
               run.body.size());
  for (const std::string& e : run.heads) std::fprintf(stderr, "  %s\n", e.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  bool head_request = (data[0] & 1) != 0;
  Splitter splitter(data[0] >> 1);
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  Run whole = parse(input, head_request, [](size_t left) { return left; });
  Run pieces = parse(input, head_request, [&](size_t left) { return splitter.next(left); });
  Run bytes = parse(input, head_request, [](size_t) { return size_t{1}; });

  if (!same(whole, pieces) || !same(whole, bytes)) {
    print("one feed", whole);
    print("random pieces", pieces);
    print("byte by byte", bytes);
    fail("the split of the input changed what was parsed");
  }
  return 0;
}
