// The worker's upstream side: one UpstreamGroup per configured upstream, one
// UpstreamPool of connections to every target, and the exchanges that use
// them. Built from the config when the worker starts; a reload starts new
// workers, so nothing here changes after that.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "shared/config.h"
#include "shared/shm.h"
#include "worker/gateway/request_id.h"
#include "worker/gateway/upstream_group.h"
#include "worker/gateway/upstream_pool.h"
#include "worker/http/exchange.h"
#include "worker/http/http_date.h"
#include "worker/http/http_parser.h"
#include "worker/router.h"

namespace phalanx::worker {

class Gateway {
 public:
  Gateway(uv_loop_t* loop, const shared::Config& config, const shared::SharedRegion& region,
          int pid);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The exchange for a request on a route with an upstream; it may already
  // have answered (nothing usable) when this returns.
  std::unique_ptr<Exchange> startExchange(const Route& route, const Request& request,
                                          ExchangeSink& sink);

  // Draining: idle upstream connections are closed; busy ones finish.
  void beginDrain();
  // Stopping: every upstream connection left is closed.
  void closeAll() { pool_->closeIdle(); }

  // Why the worker is not ready, or nullptr: a `required` upstream with no usable target.
  const char* notReadyReason() const;

  uv_loop_t* loop() const { return loop_; }
  UpstreamPool& pool() { return *pool_; }
  RequestIds& requestIds() { return request_ids_; }
  std::string_view date() { return date_.now(); }
  size_t groupCount() const { return groups_.size(); }
  UpstreamGroup& group(size_t i) { return *groups_[i]; }

 private:
  // Shared state for targets the region has no record of (unit tests):
  // local to this worker.
  struct LocalCells;

  uv_loop_t* loop_;
  std::unique_ptr<UpstreamPool> pool_;
  std::vector<std::unique_ptr<UpstreamGroup>> groups_;
  std::vector<std::unique_ptr<LocalCells>> local_cells_;
  RequestIds request_ids_;
  HttpDate date_;
};

}  // namespace phalanx::worker
