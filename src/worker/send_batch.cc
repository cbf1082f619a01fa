#include "worker/send_batch.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace phalanx::worker {

namespace {

constexpr unsigned kRingEntries = 256;  // more senders than this: several enters
constexpr int kNoResult = INT_MIN;
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

// A non-blocking send's outcome in onSent()'s terms (libuv errors are -errno).
int sendResult(ssize_t rc, int error) {
  if (rc >= 0) return static_cast<int>(rc);
  return error == EAGAIN || error == EWOULDBLOCK ? 0 : -error;
}

}  // namespace

SendBatch::SendBatch(bool use_io_uring) {
  if (!use_io_uring) {
    method_ = "send() per socket (io_uring off)";
    return;
  }
  // Flags that only spare work, tried first; a kernel before 6.0 refuses them.
  io_uring_params params{};
  params.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
  int rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  if (rc == -EINVAL) {
    params = io_uring_params{};
    rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  }
  if (rc < 0) {
    method_ = std::string("send() per socket (io_uring: ") + std::strerror(-rc) + ")";
    return;
  }
  ring_ready_ = true;
  ring_entries_ = params.sq_entries;
  method_ = "io_uring";
}

SendBatch::~SendBatch() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

void SendBatch::add(BatchedSender* sender) {
  if (sender->listed_) return;
  sender->listed_ = true;
  listed_.push_back(sender);
}

void SendBatch::remove(BatchedSender* sender) {
  if (sender->listed_) {
    sender->listed_ = false;
    std::erase(listed_, sender);
  }
  // Closed by an earlier sender's callback in the submit() under way.
  std::replace(running_.begin(), running_.end(), sender, static_cast<BatchedSender*>(nullptr));
}

void SendBatch::submit() {
  if (listed_.empty()) return;
  running_.clear();
  running_.swap(listed_);
  results_.assign(running_.size(), kNoResult);
  for (BatchedSender* sender : running_) sender->listed_ = false;

  for (size_t from = 0; ring_ready_ && from < running_.size(); from += ring_entries_) {
    if (!sendByRing(from, std::min<size_t>(ring_entries_, running_.size() - from))) break;
  }
  for (size_t i = 0; i < running_.size(); ++i) {
    if (results_[i] != kNoResult) continue;
    std::string_view bytes = running_[i]->unsent();
    if (bytes.empty()) {
      results_[i] = 0;
      continue;
    }
    ssize_t rc = ::send(running_[i]->sendFd(), bytes.data(), bytes.size(), kSendFlags);
    results_[i] = sendResult(rc, errno);
  }
  // Only now, once every send is done: a callback may append to, or free, the
  // bytes of a sender after it.
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i] != nullptr) running_[i]->onSent(results_[i]);
  }
  running_.clear();
}

bool SendBatch::sendByRing(size_t from, size_t count) {
  unsigned queued = 0;
  for (size_t i = from; i < from + count; ++i) {
    std::string_view bytes = running_[i]->unsent();
    if (bytes.empty()) {
      results_[i] = 0;
      continue;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) break;  // cannot happen: the ring is empty and count fits
    io_uring_prep_send(sqe, running_[i]->sendFd(), bytes.data(), bytes.size(), kSendFlags);
    io_uring_sqe_set_data64(sqe, i);
    ++queued;
  }
  if (queued == 0) return true;
  unsigned submitted = 0;
  int error = 0;
  while (submitted < queued) {
    // One call in practice; a kernel without IORING_SETUP_SUBMIT_ALL stops
    // at an entry it refuses (which completes with its error) and is called again.
    int rc = io_uring_submit(&ring_);
    if (rc <= 0) {
      error = rc < 0 ? -rc : EIO;
      break;
    }
    submitted += static_cast<unsigned>(rc);
  }
  // MSG_DONTWAIT sends complete within the submit: their results are in the
  // completion queue already, and the wait below never waits in practice.
  unsigned seen = 0;
  while (seen < submitted) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_peek_cqe(&ring_, &cqe);
    if (rc == -EAGAIN) rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) {
      error = -rc;
      break;
    }
    uint64_t index = io_uring_cqe_get_data64(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (index >= results_.size()) continue;  // not one of ours (cannot happen)
    results_[index] = res == -EAGAIN ? 0 : res;
    ++seen;
  }
  if (error == 0) return true;
  // A send whose outcome is unknown may have gone out: sending it again could
  // duplicate bytes, so it fails (its connection closes). When every submitted
  // one is known, what was never submitted goes by send() (the ring's pending
  // entries die with it).
  if (seen < submitted) {
    for (size_t i = from; i < from + count; ++i) {
      if (results_[i] == kNoResult) results_[i] = -EIO;
    }
  }
  disableRing(error);
  return false;
}

void SendBatch::disableRing(int error) {
  spdlog::error("io_uring: {}; sending with send() from now on", std::strerror(error));
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  method_ = std::string("send() per socket (io_uring failed: ") + std::strerror(error) + ")";
}

}  // namespace phalanx::worker
