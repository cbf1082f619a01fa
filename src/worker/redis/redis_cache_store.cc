#include "worker/redis/redis_cache_store.h"

#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace phalanx::worker {

namespace {

constexpr const char* kScanCount = "500";

// One purge under way: a SCAN step, then an UNLINK of what it found, and so on.
struct Purge {
  RedisClient& client;
  std::string pattern;
  std::function<void(int64_t)> done;
  int64_t removed = 0;

  void finish(int64_t result) {
    if (done) done(result);
  }
};

void scanStep(const std::shared_ptr<Purge>& purge, std::string cursor);

// After a batch: on to the next cursor, or done when SCAN said 0.
void continueAfter(const std::shared_ptr<Purge>& purge, std::string next) {
  if (next == "0") return purge->finish(purge->removed);
  scanStep(purge, std::move(next));
}

// `unlink`: "UNLINK" and the keys of one batch.
void unlinkBatch(const std::shared_ptr<Purge>& purge, std::vector<std::string> unlink,
                 std::string next) {
  purge->client.command(std::move(unlink),
                        [purge, next = std::move(next)](RedisReply reply) mutable {
                          if (!reply.ok() || reply.type != RedisReply::Type::Integer)
                            return purge->finish(-1);
                          purge->removed += reply.integer;
                          continueAfter(purge, std::move(next));
                        });
}

// A SCAN reply is [next cursor, [key, ...]].
void onScanned(const std::shared_ptr<Purge>& purge, RedisReply reply) {
  if (!reply.ok() || reply.type != RedisReply::Type::Array || reply.elements.size() != 2 ||
      reply.elements[0].type != RedisReply::Type::String ||
      reply.elements[1].type != RedisReply::Type::Array) {
    return purge->finish(-1);
  }
  std::string next = std::move(reply.elements[0].str);
  std::vector<std::string> unlink;
  unlink.reserve(reply.elements[1].elements.size() + 1);
  unlink.emplace_back("UNLINK");
  for (RedisReply& key : reply.elements[1].elements) {
    if (key.type != RedisReply::Type::String) return purge->finish(-1);
    unlink.push_back(std::move(key.str));
  }
  if (unlink.size() == 1) return continueAfter(purge, std::move(next));
  unlinkBatch(purge, std::move(unlink), std::move(next));
}

void scanStep(const std::shared_ptr<Purge>& purge, std::string cursor) {
  purge->client.command({"SCAN", std::move(cursor), "MATCH", purge->pattern, "COUNT", kScanCount},
                        [purge](RedisReply reply) { onScanned(purge, std::move(reply)); });
}

}  // namespace

std::string escapeRedisGlob(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

RedisCacheStore::RedisCacheStore(RedisClient& client, std::string prefix)
    : client_(client), prefix_(std::move(prefix)) {}

void RedisCacheStore::get(std::string_view key,
                          std::function<void(std::optional<std::string>)> done) {
  std::string full = prefix_;
  full += key;
  client_.command({"GET", std::move(full)}, [this, done = std::move(done)](RedisReply reply) {
    if (reply.ok() && reply.type == RedisReply::Type::String) {
      ++counters_.hits;
      return done(std::move(reply.str));
    }
    if (reply.ok() && reply.type == RedisReply::Type::Nil) {
      ++counters_.misses;
    } else {
      ++counters_.failures;
    }
    done(std::nullopt);
  });
}

void RedisCacheStore::set(std::string_view key, std::string value, uint64_t ttl_ms) {
  if (ttl_ms == 0) return;
  std::string full = prefix_;
  full += key;
  ++counters_.stores;
  client_.command({"SET", std::move(full), std::move(value), "PX", std::to_string(ttl_ms)},
                  [this](RedisReply reply) {
                    if (!reply.ok()) ++counters_.store_failures;
                  });
}

void RedisCacheStore::remove(std::string_view key_prefix) {
  purge(key_prefix, nullptr);
}

void RedisCacheStore::purge(std::string_view key_prefix, std::function<void(int64_t)> done) {
  auto state = std::make_shared<Purge>(
      Purge{.client = client_,
            .pattern = escapeRedisGlob(prefix_) + escapeRedisGlob(key_prefix) + "*",
            .done = std::move(done)});
  scanStep(state, "0");
}

}  // namespace phalanx::worker
