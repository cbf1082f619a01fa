// What a Redis command hands back: an owned copy of the server's reply, or the
// reason there is none. Owned, so a callback can keep it after hiredis has
// freed its own reply object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct redisReply;

namespace phalanx::worker {

// Why a command got no reply. A reply of type Error (the server refused the
// command) is a reply, not a failure.
enum class RedisFailure {
  None,
  NotConnected,  // no connection when the command was issued; it was never sent
  Timeout,       // sent, no reply within timeout_ms; a late reply is dropped
  Disconnected,  // sent, then the connection was lost (or dropped as dead) first
  Closed,        // the client was closed first
};

// "not connected", "timeout", "disconnected", "closed" (and "none").
const char* redisFailureName(RedisFailure failure);

struct RedisReply {
  enum class Type { Error, Status, String, Integer, Nil, Array };

  Type type = Type::Nil;
  std::string str;                   // Error, Status, String
  int64_t integer = 0;               // Integer
  std::vector<RedisReply> elements;  // Array
  RedisFailure failure = RedisFailure::None;

  // A reply arrived (possibly an Error reply).
  bool answered() const { return failure == RedisFailure::None; }
  // Answered, and not with an Error.
  bool ok() const { return answered() && type != Type::Error; }

  static RedisReply failed(RedisFailure why) {
    RedisReply reply;
    reply.failure = why;
    return reply;
  }
  // A deep copy of hiredis's reply; nullptr becomes a Disconnected failure
  // (hiredis passes nullptr only when it tears a connection down).
  static RedisReply fromHiredis(const redisReply* reply);
};

}  // namespace phalanx::worker
