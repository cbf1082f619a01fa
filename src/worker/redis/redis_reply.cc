#include "worker/redis/redis_reply.h"

#include <hiredis/hiredis.h>

namespace phalanx::worker {

const char* redisFailureName(RedisFailure failure) {
  switch (failure) {
    case RedisFailure::None: return "none";
    case RedisFailure::NotConnected: return "not connected";
    case RedisFailure::Timeout: return "timeout";
    case RedisFailure::Disconnected: return "disconnected";
    case RedisFailure::Closed: return "closed";
  }
  return "unknown";
}

// hiredis's reader bounds the nesting of arrays (7 levels), so the recursion is bounded.
RedisReply RedisReply::fromHiredis(const redisReply* reply) {
  if (reply == nullptr) return failed(RedisFailure::Disconnected);
  RedisReply out;
  switch (reply->type) {
    case REDIS_REPLY_ERROR: out.type = Type::Error; break;
    case REDIS_REPLY_STATUS: out.type = Type::Status; break;
    case REDIS_REPLY_STRING: out.type = Type::String; break;
    case REDIS_REPLY_INTEGER: out.type = Type::Integer; break;
    case REDIS_REPLY_ARRAY: out.type = Type::Array; break;
    default: out.type = Type::Nil; break;
  }
  if (reply->str != nullptr &&
      (out.type == Type::Error || out.type == Type::Status || out.type == Type::String)) {
    out.str.assign(reply->str, reply->len);
  }
  if (out.type == Type::Integer) out.integer = reply->integer;
  if (out.type == Type::Array) {
    out.elements.reserve(reply->elements);
    for (size_t i = 0; i < reply->elements; ++i) {
      out.elements.push_back(fromHiredis(reply->element[i]));
    }
  }
  return out;
}

}  // namespace phalanx::worker
