#include "worker/redis/redis_uv_adapter.h"

#include <hiredis/async.h>

#include <memory>

namespace phalanx::worker {

namespace {

struct Watch {
  redisAsyncContext* context = nullptr;  // null once hiredis has let go of it
  uv_poll_t poll{};
  int events = 0;  // UV_READABLE | UV_WRITABLE, as hiredis asked
};

void onPoll(uv_poll_t* poll, int status, int events) {
  auto* watch = static_cast<Watch*>(poll->data);
  // On an error libuv passes no events: let hiredis try what it waits for and
  // meet the error itself.
  int ready = status != 0 ? watch->events : events;
  if (watch->context != nullptr && (ready & UV_READABLE)) redisAsyncHandleRead(watch->context);
  // The read may have freed the context (cleanup() cleared it).
  if (watch->context != nullptr && (ready & UV_WRITABLE)) redisAsyncHandleWrite(watch->context);
}

void update(Watch* watch) {
  if (watch->events != 0) {
    uv_poll_start(&watch->poll, watch->events, onPoll);
  } else {
    uv_poll_stop(&watch->poll);
  }
}

void addRead(void* data) {
  auto* watch = static_cast<Watch*>(data);
  watch->events |= UV_READABLE;
  update(watch);
}
void delRead(void* data) {
  auto* watch = static_cast<Watch*>(data);
  watch->events &= ~UV_READABLE;
  update(watch);
}
void addWrite(void* data) {
  auto* watch = static_cast<Watch*>(data);
  watch->events |= UV_WRITABLE;
  update(watch);
}
void delWrite(void* data) {
  auto* watch = static_cast<Watch*>(data);
  watch->events &= ~UV_WRITABLE;
  update(watch);
}

// hiredis is freeing the context. 0.14 calls this twice on an error (once
// disconnecting, once freeing), so it unhooks itself the first time.
void cleanup(void* data) {
  auto* watch = static_cast<Watch*>(data);
  if (watch == nullptr || watch->context == nullptr) return;
  watch->context->ev.data = nullptr;
  watch->context->ev.cleanup = nullptr;
  watch->context = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll), [](uv_handle_t* handle) {
    std::unique_ptr<Watch> owned(static_cast<Watch*>(handle->data));
  });
}

}  // namespace

bool attachToLoop(redisAsyncContext* context, uv_loop_t* loop) {
  if (context->ev.data != nullptr) return false;
  auto watch = std::make_unique<Watch>();
  // On failure the handle was never registered with the loop and can simply go.
  if (uv_poll_init(loop, &watch->poll, context->c.fd) != 0) return false;
  watch->context = context;
  watch->poll.data = watch.get();
  context->ev.addRead = addRead;
  context->ev.delRead = delRead;
  context->ev.addWrite = addWrite;
  context->ev.delWrite = delWrite;
  context->ev.cleanup = cleanup;
  context->ev.data = watch.release();  // freed by cleanup(), through uv_close
  return true;
}

}  // namespace phalanx::worker
