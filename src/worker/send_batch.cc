#include "worker/send_batch.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace phalanx::worker {

namespace {

constexpr unsigned kRingEntries = 256;  // more senders than this: several enters
constexpr int kNoResult = INT_MIN;
constexpr uint64_t kCancelTag = UINT64_MAX;  // a cancel entry's user data
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

// A non-blocking send's outcome in onSent()'s terms (libuv errors are -errno).
int sendResult(ssize_t rc, int error) {
  if (rc >= 0) return static_cast<int>(rc);
  return error == EAGAIN || error == EWOULDBLOCK ? 0 : -error;
}

// One byte to send, for probe().
struct ProbeSender : BatchedSender {
  explicit ProbeSender(int socket) : fd(socket) {}
  int sendFd() const override { return fd; }
  std::string_view unsent() const override { return "x"; }
  void onSent(int) override {}
  int fd;
};

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
  std::string why;
  if (!probe(&why) && ring_ready_) disableRing(why);
}

bool SendBatch::probe(std::string* why) {
  int ends[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends) != 0) {
    *why = std::string("probe: socketpair: ") + std::strerror(errno);
    return false;
  }
  int small = 4096;  // the kernel's minimum: full after a few sends
  setsockopt(ends[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  char chunk[4096] = {};
  while (::send(ends[0], chunk, sizeof chunk, kSendFlags) > 0) {
  }
  ProbeSender sender(ends[0]);
  running_ = {&sender};
  results_.assign(1, kNoResult);
  bool ran = sendByRing(0, 1);
  int result = results_[0];
  running_.clear();
  close(ends[0]);
  close(ends[1]);
  if (!ran) return false;  // the ring is off already, and method_ says why
  if (result != 0) {
    *why = result < 0 ? std::strerror(-result) : "a send on a full socket took bytes";
    return false;
  }
  return true;
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
    if (!sendByRing(from, std::min<size_t>(ring_entries_, running_.size() - from))) {
      spdlog::error("sends: {}; one send() per socket from now on", method_);
      break;
    }
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
  queued_.clear();
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
    queued_.push_back(i);
  }
  if (queued_.empty()) return true;
  size_t submitted = 0;
  int error = 0;
  while (submitted < queued_.size()) {
    // One call in practice; a kernel without IORING_SETUP_SUBMIT_ALL stops
    // at an entry it refuses (which completes with its error) and is called again.
    int rc = io_uring_submit(&ring_);
    if (rc <= 0) {
      error = rc < 0 ? -rc : EIO;
      break;
    }
    submitted += static_cast<size_t>(rc);
  }
  // MSG_DONTWAIT sends complete within the submit: their results are in the
  // completion queue already.
  size_t seen = reap(false, &error);
  size_t late = 0;
  if (seen < submitted && error == 0) {
    // A kernel that armed a send to wait for room in its socket (not one
    // this was written for): such sends are cancelled rather than waited
    // for, which could take as long as the peer likes. A cancelled send
    // sent nothing (0); cancelling completes them at once, so the wait is short.
    for (size_t k = 0; k < submitted; ++k) {
      size_t i = queued_[k];
      if (results_[i] != kNoResult) continue;
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      io_uring_prep_cancel64(sqe, i, 0);
      io_uring_sqe_set_data64(sqe, kCancelTag);
      ++late;
    }
    if (int rc = io_uring_submit(&ring_); rc < 0) error = -rc;
    if (error == 0) seen += reap(true, &error, submitted - seen);
  }
  if (error == 0 && late == 0) return true;
  // A send whose outcome is unknown may have gone out: sending it again could
  // duplicate bytes, so it fails (its connection closes). What was never
  // submitted goes by send() (the ring's pending entries die with it).
  for (size_t k = 0; k < submitted; ++k) {
    if (results_[queued_[k]] == kNoResult) results_[queued_[k]] = -EIO;
  }
  disableRing(late > 0 ? "sends on a full socket waited instead of completing"
                       : std::strerror(error));
  return false;
}

// Takes the completions of running_'s sends into results_ (a cancelled one
// sent nothing: 0): those already there, or, with `wait`, until `owed` came.
size_t SendBatch::reap(bool wait, int* error, size_t owed) {
  size_t seen = 0;
  while (!wait || seen < owed) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_peek_cqe(&ring_, &cqe);
    if (rc == -EAGAIN) {
      if (!wait) break;
      rc = io_uring_wait_cqe(&ring_, &cqe);
    }
    if (rc == -EINTR) continue;
    if (rc < 0) {
      *error = -rc;
      break;
    }
    uint64_t index = io_uring_cqe_get_data64(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (index >= results_.size()) continue;  // a cancel's own completion
    results_[index] = res == -EAGAIN || res == -ECANCELED ? 0 : res;
    ++seen;
  }
  return seen;
}

void SendBatch::disableRing(const std::string& why) {
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  method_ = "send() per socket (io_uring: " + why + ")";
}

}  // namespace phalanx::worker
