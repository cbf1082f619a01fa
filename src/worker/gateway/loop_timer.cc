#include "worker/gateway/loop_timer.h"

#include <memory>

namespace phalanx::worker {

LoopTimer::LoopTimer(uv_loop_t* loop, std::function<void()> on_fire)
    : handle_(std::make_unique<Handle>().release()) {
  handle_->on_fire = std::move(on_fire);
  uv_timer_init(loop, &handle_->timer);
  handle_->timer.data = handle_;
}

LoopTimer::~LoopTimer() {
  uv_timer_stop(&handle_->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->timer), [](uv_handle_t* h) {
    std::unique_ptr<Handle> owned(static_cast<Handle*>(h->data));
  });
}

void LoopTimer::start(uint64_t timeout_ms) {
  uv_timer_start(
      &handle_->timer,
      [](uv_timer_t* t) {
        auto* handle = static_cast<Handle*>(t->data);
        handle->on_fire();
      },
      timeout_ms, 0);
}

void LoopTimer::stop() {
  uv_timer_stop(&handle_->timer);
}

}  // namespace phalanx::worker
