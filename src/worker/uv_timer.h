// A uv_timer_t that its owner can destroy at any time, even from inside the
// timer's own callback: the handle lives on the heap and is freed by libuv's
// close callback, after the owner is gone. The loop must run once more after
// the last UvTimer is destroyed for that memory to be released (as for any
// uv handle); until then the loop reports the closing handle as alive.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace phalanx::worker {

class UvTimer {
 public:
  explicit UvTimer(uv_loop_t* loop) : handle_(std::make_unique<Handle>()) {
    uv_timer_init(loop, &handle_->timer);
    handle_->timer.data = handle_.get();
  }
  UvTimer(const UvTimer&) = delete;
  UvTimer& operator=(const UvTimer&) = delete;
  ~UvTimer() {
    // Stopping happens inside uv_close; `on_fire` stays untouched because it may
    // be the function running right now (a callback that destroys its owner).
    Handle* handle = handle_.release();
    uv_close(reinterpret_cast<uv_handle_t*>(&handle->timer),
             [](uv_handle_t* h) { std::unique_ptr<Handle> owned(static_cast<Handle*>(h->data)); });
  }

  // (Re)arms the timer: `on_fire` runs once, `delay_ms` from the loop's time.
  void start(uint64_t delay_ms, std::function<void()> on_fire) {
    handle_->on_fire = std::move(on_fire);
    uv_timer_start(&handle_->timer, &UvTimer::fire, delay_ms, 0);
  }
  void stop() { uv_timer_stop(&handle_->timer); }
  bool active() const {
    return uv_is_active(reinterpret_cast<const uv_handle_t*>(&handle_->timer)) != 0;
  }

 private:
  struct Handle {
    uv_timer_t timer{};
    std::function<void()> on_fire;
  };
  static void fire(uv_timer_t* timer) {
    // A copy, so that a callback may re-arm this timer (replacing on_fire) or
    // destroy its owner while it runs.
    std::function<void()> on_fire = static_cast<Handle*>(timer->data)->on_fire;
    if (on_fire) on_fire();
  }

  std::unique_ptr<Handle> handle_;
};

}  // namespace phalanx::worker
