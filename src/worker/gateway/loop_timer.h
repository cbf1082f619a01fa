// A uv timer owned by an object that may be destroyed at any moment (an
// exchange whose client left): the handle lives on the heap and frees itself
// once libuv has closed it, so the owner's destructor never waits for the loop.
#pragma once

#include <uv.h>

#include <functional>

namespace phalanx::worker {

class LoopTimer {
 public:
  LoopTimer(uv_loop_t* loop, std::function<void()> on_fire);
  ~LoopTimer();
  LoopTimer(const LoopTimer&) = delete;
  LoopTimer& operator=(const LoopTimer&) = delete;

  void start(uint64_t timeout_ms);
  void stop();

 private:
  struct Handle {
    uv_timer_t timer{};
    std::function<void()> on_fire;
  };
  Handle* handle_;  // freed by its close callback
};

}  // namespace phalanx::worker
