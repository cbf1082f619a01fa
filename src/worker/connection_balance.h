// Evening out keep-alive connections across workers.
//
// The kernel spreads new connections over the SO_REUSEPORT sockets by a hash
// of the 4-tuple: statistically even, but a few dozen long-lived keep-alive
// connections (a load balancer's pool, wrk -c64) can land 40/24, and the busier
// worker then serves most of the traffic. A worker that holds clearly more
// connections than the mean of the ready workers closes its surplus politely:
// the next responses on that many connections carry `Connection: close`, the
// clients reconnect, and the kernel hashes the new connections afresh. Repeated
// every heartbeat, the counts converge within the slack below; a worker at or
// under the mean never closes anything.
#pragma once

#include <cstdint>
#include <span>

namespace phalanx::worker {

// How many of its `mine` open connections a worker should close, given the
// open connections of every ready worker (itself included). 0 when fewer than
// two workers are ready or when `mine` is within max(2, 5% of the mean) of the
// mean.
uint64_t connectionsToShed(uint64_t mine, std::span<const uint64_t> ready_workers);

}  // namespace phalanx::worker
