// Drives a hiredis async context from a libuv loop: the ev hooks hiredis calls
// to watch its socket, on one uv_poll_t.
//
// Why not hiredis's own adapters/libuv.h: in hiredis 0.14 (Debian 12) its poll
// callback returns early when libuv reports an error, and libuv reports
// POLLERR (a refused connect, a reset connection) only that way, after
// stopping the handle. hiredis then never learns that the socket failed: a
// refused connect hangs until our connect timeout, and a reset subscriber
// connection hangs forever (it sends nothing that could time out). This
// adapter hands the error to hiredis as the events it was waiting for, so its
// read or write finds the error and tears the context down (as hiredis 1.x's
// adapter does).
//
// hiredis owns the attachment: it calls the cleanup hook when it frees the
// context, which closes the poll handle; the handle's memory goes in its close
// callback, on the loop's next turn.
#pragma once

#include <uv.h>

struct redisAsyncContext;

namespace phalanx::worker {

// False when the context already has an event library or libuv refuses its fd.
bool attachToLoop(redisAsyncContext* context, uv_loop_t* loop);

}  // namespace phalanx::worker
