#include "worker/gateway/upstream_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace phalanx::worker {

namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;
// Corked up to this much (a request head with a small body); sent at once beyond.
constexpr size_t kCorkBytes = 16 * 1024;

UpstreamConnection& owner(uv_handle_t* handle) {
  return *static_cast<UpstreamConnection*>(handle->data);
}

}  // namespace

UpstreamConnection::UpstreamConnection(UpstreamPool& pool, uint32_t target)
    : pool_(pool), target_(target) {}

// One the pool frees without closing it first (the worker is stopping) must
// not stay in the send batch.
UpstreamConnection::~UpstreamConnection() {
  pool_.sends_.remove(this);
}

int UpstreamConnection::write(std::string_view first, std::string_view second) {
  if (state_ == State::Closing) return UV_ECANCELED;
  if (!writes_.empty()) {
    // Behind bytes the socket has not taken yet: queued after them, in order.
    std::string bytes;
    bytes.reserve(first.size() + second.size());
    bytes.append(first);
    bytes.append(second);
    return queue(std::move(bytes), 0);
  }
  corked_.append(first);
  corked_.append(second);
  if (corked_.size() >= kCorkBytes) {
    // A body's worth: waiting gains nothing, and the cork would grow with the body.
    pool_.sends_.remove(this);
    return sendCorked();
  }
  pool_.sends_.add(this);
  return 0;
}

int UpstreamConnection::sendCorked() {
  uv_buf_t buf = uv_buf_init(corked_.data(), static_cast<unsigned>(corked_.size()));
  int rc = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1);
  return afterSend(rc == UV_EAGAIN ? 0 : rc);
}

// `result`: bytes of corked_ the socket took, or a libuv error.
int UpstreamConnection::afterSend(int result) {
  size_t taken = result > 0 ? static_cast<size_t>(result) : 0;
  if (taken > 0) sent_any_ = true;
  if (taken == corked_.size()) {
    // A request head's worth of storage is kept for the next one; more is not kept idle.
    if (corked_.capacity() > kCorkBytes) {
      std::string().swap(corked_);
    } else {
      corked_.clear();
    }
    return 0;
  }
  if (result < 0) {
    corked_.clear();
    return result;
  }
  return queue(std::exchange(corked_, std::string()), taken);
}

int UpstreamConnection::sendFd() const {
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd);
  return fd;
}

// The worker's send batch sent corked_.
void UpstreamConnection::onSent(int result) {
  if (state_ == State::Closing) return;
  if (int rc = afterSend(result); rc != 0) {
    failSend(rc);
  } else if (state_ == State::Busy && user_ != nullptr) {
    user_->onUpstreamWritten(0);  // a user that paused its client on the backlog resumes it
  }
}

void UpstreamConnection::failSend(int status) {
  if (state_ != State::Busy || user_ == nullptr) return;
  if (sent_any_) {
    user_->onUpstreamWritten(status);
  } else {
    user_->onUpstreamSendFailed(status);
  }
}

// What the socket did not take now: a uv_write of `bytes` from `offset` on,
// behind any queued before it.
int UpstreamConnection::queue(std::string bytes, size_t offset) {
  auto queued = std::make_unique<QueuedWrite>();
  queued->bytes = std::move(bytes);
  queued->length = queued->bytes.size() - offset;
  QueuedWrite* raw = queued.get();
  raw->req.data = this;
  uv_buf_t buf = uv_buf_init(raw->bytes.data() + offset, static_cast<unsigned>(raw->length));
  int rc = uv_write(&raw->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
                    [](uv_write_t* req, int status) {
                      auto* self = static_cast<UpstreamConnection*>(req->data);
                      self->onWriteDone(reinterpret_cast<QueuedWrite*>(req), status);
                    });
  if (rc != 0) return rc;
  pending_write_ += raw->length;
  writes_.push_back(std::move(queued));
  return 0;
}

size_t UpstreamConnection::pendingWrite() const {
  return pending_write_ + corked_.size();
}

// QueuedWrite starts with its uv_write_t, so the request's address is the write's.
void UpstreamConnection::onWriteDone(QueuedWrite* write, int status) {
  for (auto it = writes_.begin(); it != writes_.end(); ++it) {
    if (it->get() != write) continue;
    pending_write_ -= write->length;
    writes_.erase(it);
    break;
  }
  if (state_ == State::Busy && user_ != nullptr) user_->onUpstreamWritten(status);
}

void UpstreamConnection::startReading() {
  if (reading_ || state_ == State::Closing) return;
  reading_ = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) { *buf = owner(h).pool_.readBuffer(); },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        owner(reinterpret_cast<uv_handle_t*>(s)).onRead(nread, buf);
      });
}

void UpstreamConnection::stopReading() {
  if (!reading_) return;
  reading_ = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void UpstreamConnection::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread == 0) return;
  if (state_ == State::Idle) {
    // An idle upstream may only close; bytes it sends unasked are garbage.
    pool_.close(this);
    return;
  }
  if (state_ != State::Busy || user_ == nullptr) return;
  if (nread < 0) {
    stopReading();
    user_->onUpstreamEnd(static_cast<int>(nread));
    return;
  }
  user_->onUpstreamData(buf->base, static_cast<size_t>(nread));
}

void UpstreamConnection::setTimeout(uint64_t timeout_ms) {
  setDeadline(uv_now(pool_.loop_) + timeout_ms);
}

void UpstreamConnection::setDeadline(uint64_t deadline_ms) {
  deadline_ms_ = deadline_ms;
  if (timer_armed_ && timer_due_ms_ <= deadline_ms) return;  // fires early, re-arms then
  uint64_t now = uv_now(pool_.loop_);
  timer_due_ms_ = deadline_ms;
  timer_armed_ = true;
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { owner(reinterpret_cast<uv_handle_t*>(t)).onTimer(); },
      deadline_ms > now ? deadline_ms - now : 0, 0);
}

void UpstreamConnection::onTimer() {
  timer_armed_ = false;
  if (deadline_ms_ == 0 || state_ == State::Closing) return;
  if (uv_now(pool_.loop_) < deadline_ms_) {
    setDeadline(deadline_ms_);
    return;
  }
  deadline_ms_ = 0;
  if (state_ == State::Idle) {
    pool_.close(this);
  } else if (user_ != nullptr) {
    user_->onUpstreamTimeout();
  }
}

void UpstreamConnection::beginClose() {
  if (state_ == State::Closing) return;
  state_ = State::Closing;
  // Its memory goes once its handles are closed; the batch must not send it then.
  pool_.sends_.remove(this);
  user_ = nullptr;
  reading_ = false;
  auto on_closed = [](uv_handle_t* h) {
    UpstreamConnection& self = owner(h);
    if (--self.handles_open_ == 0) self.pool_.forget(&self);
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

UpstreamPool::UpstreamPool(uv_loop_t* loop, SendBatch& sends, std::vector<Target> targets)
    : loop_(loop), sends_(sends), targets_(std::move(targets)), idle_(targets_.size()) {}

UpstreamPool::~UpstreamPool() = default;

uv_buf_t UpstreamPool::readBuffer() {
  if (!read_buffer_) read_buffer_ = std::make_unique<char[]>(kReadBufferBytes);
  return uv_buf_init(read_buffer_.get(), kReadBufferBytes);
}

UpstreamConnection* UpstreamPool::take(uint32_t target, UpstreamConnection::User* user) {
  auto& idle = idle_[target];
  if (idle.empty()) return nullptr;
  UpstreamConnection* conn = idle.back();
  idle.pop_back();
  conn->clearTimeout();
  // It keeps reading: the new user reads its response through the same
  // callback, and a stop + start would cost two epoll_ctl calls a request.
  conn->state_ = UpstreamConnection::State::Busy;
  conn->user_ = user;
  conn->sent_any_ = false;
  return conn;
}

UpstreamConnection* UpstreamPool::open(uint32_t target, UpstreamConnection::User* user,
                                       int* error) {
  all_.push_back(std::unique_ptr<UpstreamConnection>(new UpstreamConnection(*this, target)));
  UpstreamConnection* conn = all_.back().get();
  conn->self_ = std::prev(all_.end());
  uv_tcp_init(loop_, &conn->tcp_);
  uv_timer_init(loop_, &conn->timer_);
  conn->tcp_.data = conn;
  conn->timer_.data = conn;
  conn->handles_open_ = 2;
  conn->user_ = user;
  conn->connect_req_.data = conn;
  int rc = uv_tcp_connect(&conn->connect_req_, &conn->tcp_,
                          reinterpret_cast<const sockaddr*>(&targets_[target].address),
                          [](uv_connect_t* req, int status) {
                            auto* self = static_cast<UpstreamConnection*>(req->data);
                            if (self->state_ != UpstreamConnection::State::Connecting) return;
                            self->state_ = UpstreamConnection::State::Busy;
                            if (status == 0) uv_tcp_nodelay(&self->tcp_, 1);
                            if (self->user_ != nullptr) self->user_->onConnected(status);
                          });
  if (rc != 0) {
    *error = rc;
    conn->beginClose();
    return nullptr;
  }
  return conn;
}

void UpstreamPool::release(UpstreamConnection* conn, bool reusable) {
  const Target& target = targets_[conn->target_];
  auto& idle = idle_[conn->target_];
  if (!reusable || conn->state_ != UpstreamConnection::State::Busy || conn->pendingWrite() > 0 ||
      target.max_idle == 0) {
    close(conn);
    return;
  }
  if (idle.size() >= target.max_idle) close(idle.front());  // the oldest goes
  ++conn->requests_;
  conn->state_ = UpstreamConnection::State::Idle;
  conn->user_ = nullptr;
  idle.push_back(conn);
  conn->idle_at_ = std::prev(idle.end());
  conn->startReading();  // notices the upstream closing it
  conn->setTimeout(target.idle_timeout_ms);
}

void UpstreamPool::close(UpstreamConnection* conn) {
  if (conn->state_ == UpstreamConnection::State::Idle) idle_[conn->target_].erase(conn->idle_at_);
  conn->beginClose();
}

void UpstreamPool::closeIdle() {
  for (auto& idle : idle_) {
    while (!idle.empty()) close(idle.front());
  }
}

void UpstreamPool::forget(UpstreamConnection* conn) {
  all_.erase(conn->self_);
}

}  // namespace phalanx::worker
