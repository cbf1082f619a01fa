// The cluster channel for circuit-breaker transitions. The breakers live in
// shared memory and are driven by the proxy; this only carries their
// transitions between hosts: out with publish(), in through onTransition().
//
// Contract:
// - publish() sends `PUBLISH <prefix>:breakers <msg>` and stores the message as
//   the breaker's latest state, `HSET <prefix>:breaker-state <upstream>\n<target>
//   <msg>`, the hash a host that starts later reads. It never waits: with Redis
//   down the message is dropped and counted, and breakers keep working locally.
// - The handler runs for every valid message on the channel and, after each
//   (re)subscription, for every entry of `HGETALL <prefix>:breaker-state`, so a
//   host that was cut off catches up (if that read fails, or the command
//   connection is not up yet, it is retried once that connection is up).
//   Messages from this bus's own origin are skipped (the host's workers share
//   the breaker through shm already), and so is a transition not newer
//   (at_wall_ms) than the last one this bus saw or published for the same
//   breaker: a snapshot read after a live message, or a message replayed by a
//   later snapshot, never moves a breaker back in time.
// - Malformed, oversized or invalid messages are dropped and counted.
// - The RedisClient must outlive the bus; its callbacks reach the bus, so the
//   bus must outlive the client's use of it (close the client first).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "worker/redis/redis_client.h"

namespace phalanx::worker {

struct BreakerTransition {
  std::string upstream;
  std::string target;               // "127.0.0.1:9001"
  uint32_t state = 0;               // 0 closed, 1 open, 2 half_open
  uint64_t at_wall_ms = 0;          // when it happened, wall clock
  uint64_t open_until_wall_ms = 0;  // for open: when it may go half-open; else 0
  std::string origin;               // the publishing host: hostname + ":" + master pid

  bool operator==(const BreakerTransition&) const = default;
};

inline constexpr size_t kMaxTransitionBytes = 4096;

// One JSON object, e.g. {"upstream":"api","target":"127.0.0.1:9001",
// "state":"open","at_wall_ms":1700000000000,"open_until_wall_ms":1700000030000,
// "origin":"web-1:4242"}; states by name so `redis-cli subscribe` reads plainly.
std::string encodeTransition(const BreakerTransition& transition);
// Strict: exactly those keys, once each, of those types; non-empty strings
// without control characters; a known state; at_wall_ms > 0; at most
// kMaxTransitionBytes. Anything else is nullopt.
std::optional<BreakerTransition> decodeTransition(std::string_view text);

// This host's origin: gethostname() + ":" + master_pid.
std::string hostOrigin(int master_pid);

class BreakerBus {
 public:
  struct Counters {
    uint64_t published = 0;  // handed to Redis (PUBLISH sent)
    uint64_t dropped = 0;    // not published: Redis down, failed or timed out, invalid
    uint64_t received = 0;   // handed to the handler
    uint64_t ignored = 0;    // own origin, or not newer than what was seen
    uint64_t malformed = 0;  // undecodable messages or hash entries
  };
  using Handler = std::function<void(const BreakerTransition&)>;

  // `origin` identifies this host (hostOrigin()); every bus of the host's
  // workers uses the same one.
  BreakerBus(RedisClient& client, std::string origin, std::string key_prefix = "phalanx");
  BreakerBus(const BreakerBus&) = delete;
  BreakerBus& operator=(const BreakerBus&) = delete;

  // Sets the handler and subscribes (once; a later call only replaces the handler).
  void onTransition(Handler handler);
  // Publishes `transition` with this bus's origin (whatever its origin field says).
  void publish(const BreakerTransition& transition);

  const std::string& origin() const { return origin_; }
  const std::string& channel() const { return channel_; }
  const std::string& stateKey() const { return state_key_; }
  const Counters& counters() const { return counters_; }

 private:
  void receive(std::string_view message);
  // Reads the hash when one is wanted and the command connection is up.
  void readSnapshot();
  // True when `t` is newer than what was seen for its breaker; remembers it.
  bool advance(const BreakerTransition& t);

  RedisClient& client_;
  std::string origin_;
  std::string channel_;    // <prefix>:breakers
  std::string state_key_;  // <prefix>:breaker-state
  Handler handler_;
  bool subscribed_ = false;
  // A (re)subscription happened and its snapshot is not read yet: the
  // subscriber connection may confirm before the command connection is up,
  // or the read may fail; it is retried when the command connection comes up.
  bool snapshot_wanted_ = false;
  bool snapshot_reading_ = false;
  struct Seen {
    uint64_t at_wall_ms;
    uint32_t state;
  };
  std::unordered_map<std::string, Seen> latest_;  // by "<upstream>\n<target>"
  Counters counters_;
};

}  // namespace phalanx::worker
