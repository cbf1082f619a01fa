// "Log at most once per interval, with a count": for errors that can repeat
// many times a second (accept at the fd limit, an access log on a full disk),
// where one line per event would bury everything else in the error log.
//
// The first event of a run is reported at once; the events after it, until
// `interval_ms` has passed since that line, are only counted, and the next
// line says how many there were. A quiet caller that keeps a count pending
// reports it through due() from a timer, so every event ends up in some line.
// No clock and no I/O of its own: the caller passes now_ms (monotonic) and
// writes the line, so tests drive it with plain numbers.
#pragma once

#include <cstdint>

namespace phalanx::shared {

class LogThrottle {
 public:
  // What a line should say: `count` events (the one at hand included) over the
  // `since_ms` since the previous line (0 for the first line ever).
  struct Report {
    uint64_t count = 0;
    uint64_t since_ms = 0;
    explicit operator bool() const { return count != 0; }
  };

  explicit LogThrottle(uint64_t interval_ms) : interval_ms_(interval_ms) {}

  // `count` events happened at now_ms. A Report when a line is due now (the
  // first event, or the interval has passed since the last line), else an
  // empty one and the events wait in pending().
  Report note(uint64_t now_ms, uint64_t count = 1) {
    pending_ += count;
    return due(now_ms);
  }

  // The events still pending, if the interval has passed since the last line;
  // an empty Report otherwise. For a timer, once the events stopped.
  Report due(uint64_t now_ms) {
    if (pending_ == 0) return {};
    if (logged_ && now_ms - last_ms_ < interval_ms_) return {};
    return take(now_ms);
  }

  // Whatever is pending, interval or not: for a last line before closing.
  Report take(uint64_t now_ms) {
    if (pending_ == 0) return {};
    Report report{.count = pending_, .since_ms = logged_ ? now_ms - last_ms_ : 0};
    pending_ = 0;
    last_ms_ = now_ms;
    logged_ = true;
    return report;
  }

  uint64_t pending() const { return pending_; }

 private:
  uint64_t interval_ms_;
  uint64_t pending_ = 0;
  uint64_t last_ms_ = 0;  // when the last line was written (valid once logged_)
  bool logged_ = false;
};

}  // namespace phalanx::shared
