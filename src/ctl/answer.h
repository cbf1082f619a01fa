// The master's answer: one JSON object, checked against the protocol, and what
// phalanxctl prints for it.
//
// Contract:
// - Answer::parse() accepts an object with "version": 1 and a boolean "ok";
//   anything else (not JSON, another version, no "ok") is refused with a
//   message that quotes the start of the line.
// - An ok:false answer carries its "error" (a stand-in when the master gave
//   none).
// - renderAnswer() turns an ok answer into the text for people; a member the
//   command needs but the answer lacks makes it fail, never print a guess.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ctl/invocation.h"

namespace phalanx::ctl {

inline constexpr uint64_t kProtocolVersion = 1;

class Answer {
 public:
  // On failure returns nullopt and sets `error`, e.g.
  // "not JSON (TAPE_ERROR: ...): <start of the line>".
  static std::optional<Answer> parse(std::string_view line, std::string* error);

  bool ok() const { return ok_; }
  // The master's reason, for an ok:false answer.
  const std::string& error() const { return error_; }
  simdjson::dom::element root() const { return root_; }

 private:
  Answer() = default;

  // The parser owns the memory `root_` points into; it lives on the heap so
  // an Answer can move.
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
  bool ok_ = false;
  std::string error_;
};

// What phalanxctl prints for an ok answer to `command`, ending in '\n' (or
// empty). `now_ms` (wall clock) is for status. On a malformed answer returns
// nullopt and sets `error`.
std::optional<std::string> renderAnswer(Command command, const Answer& answer, uint64_t now_ms,
                                        std::string* error);

}  // namespace phalanx::ctl
