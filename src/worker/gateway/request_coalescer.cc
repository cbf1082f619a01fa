#include "worker/gateway/request_coalescer.h"

#include <algorithm>
#include <utility>

namespace phalanx::worker {

bool RequestCoalescer::join(const std::string& key, Waiter waiter) {
  auto [slot, leads] = waiters_.try_emplace(key);
  if (!leads) slot->second.push_back(waiter);
  return leads;
}

std::vector<RequestCoalescer::Waiter> RequestCoalescer::release(const std::string& key) {
  auto slot = waiters_.find(key);
  if (slot == waiters_.end()) return {};
  std::vector<Waiter> waiters = std::move(slot->second);
  waiters_.erase(slot);
  return waiters;
}

void RequestCoalescer::leave(const std::string& key, Waiter waiter) {
  auto slot = waiters_.find(key);
  if (slot == waiters_.end()) return;
  std::vector<Waiter>& waiters = slot->second;
  auto it = std::find(waiters.begin(), waiters.end(), waiter);
  if (it != waiters.end()) waiters.erase(it);
}

size_t RequestCoalescer::inFlight() const {
  return waiters_.size();
}

}  // namespace phalanx::worker
