#include "worker/redis/breaker_bus.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "shared/json_reader.h"
#include "shared/json_writer.h"

namespace phalanx::worker {

namespace {

constexpr std::array<std::string_view, 3> kStateNames = {"closed", "open", "half_open"};

bool printable(std::string_view text) {
  return !text.empty() && std::none_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

bool valid(const BreakerTransition& t) {
  return printable(t.upstream) && printable(t.target) && printable(t.origin) &&
         t.state < kStateNames.size() && t.at_wall_ms > 0;
}

// The hash field of a breaker; '\n' cannot occur in a valid name.
std::string breakerKey(const BreakerTransition& t) {
  return t.upstream + "\n" + t.target;
}

}  // namespace

std::string encodeTransition(const BreakerTransition& t) {
  shared::JsonWriter w;
  w.beginObject();
  w.field("upstream", t.upstream);
  w.field("target", t.target);
  w.field("state", t.state < kStateNames.size() ? kStateNames[t.state] : "invalid");
  w.field("at_wall_ms", t.at_wall_ms);
  w.field("open_until_wall_ms", t.open_until_wall_ms);
  w.field("origin", t.origin);
  w.endObject();
  return w.take();
}

std::optional<BreakerTransition> decodeTransition(std::string_view text) {
  if (text.size() > kMaxTransitionBytes) return std::nullopt;
  // One parser per thread, reused: its buffers grow once to kMaxTransitionBytes.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) return std::nullopt;
  namespace json = shared::json;
  json::Errors errors;
  BreakerTransition t;
  std::string state;
  bool complete = false;
  {
    json::ObjectReader r(errors, "", root);
    // `&`, not `&&`: every key is asked for, so the reader's unknown-key check is exact.
    complete = r.valid() & r.string("upstream", t.upstream) & r.string("target", t.target) &
               r.choice("state", state, {"closed", "open", "half_open"}) &
               r.u64("at_wall_ms", t.at_wall_ms) &
               r.u64("open_until_wall_ms", t.open_until_wall_ms, json::AtLeast::Zero) &
               r.string("origin", t.origin);
  }  // reports unknown keys into `errors`
  if (!complete || errors.size() != 0) return std::nullopt;
  t.state = static_cast<uint32_t>(std::find(kStateNames.begin(), kStateNames.end(), state) -
                                  kStateNames.begin());
  if (!valid(t)) return std::nullopt;
  return t;
}

std::string hostOrigin(int master_pid) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof host, "unknown");
  return std::string(host) + ":" + std::to_string(master_pid);
}

BreakerBus::BreakerBus(RedisClient& client, std::string origin, std::string key_prefix)
    : client_(client),
      origin_(std::move(origin)),
      channel_(key_prefix + ":breakers"),
      state_key_(key_prefix + ":breaker-state") {}

void BreakerBus::onTransition(Handler handler) {
  handler_ = std::move(handler);
  if (subscribed_) return;
  subscribed_ = true;
  client_.onConnected([this] { readSnapshot(); });
  client_.subscribe(
      channel_, [this](std::string_view message) { receive(message); },
      [this] {
        snapshot_wanted_ = true;
        readSnapshot();
      });
}

void BreakerBus::publish(const BreakerTransition& transition) {
  BreakerTransition t = transition;
  t.origin = origin_;
  if (!valid(t) || !client_.connected()) {
    ++counters_.dropped;
    return;
  }
  // Ours count as seen: an older remote state read later must not undo them.
  std::string key = breakerKey(t);
  latest_[key] = Seen{t.at_wall_ms, t.state};
  std::string message = encodeTransition(t);
  ++counters_.published;
  client_.command({"PUBLISH", channel_, message}, [this](RedisReply reply) {
    if (!reply.ok()) ++counters_.dropped;
  });
  client_.command({"HSET", state_key_, std::move(key), std::move(message)}, [](RedisReply) {});
}

bool BreakerBus::advance(const BreakerTransition& t) {
  auto [it, inserted] = latest_.try_emplace(breakerKey(t), Seen{t.at_wall_ms, t.state});
  if (inserted) return true;
  Seen& seen = it->second;
  if (t.at_wall_ms < seen.at_wall_ms ||
      (t.at_wall_ms == seen.at_wall_ms && t.state == seen.state)) {
    return false;
  }
  seen = Seen{t.at_wall_ms, t.state};
  return true;
}

void BreakerBus::receive(std::string_view message) {
  std::optional<BreakerTransition> t = decodeTransition(message);
  if (!t) {
    ++counters_.malformed;
    return;
  }
  if (t->origin == origin_ || !advance(*t)) {
    ++counters_.ignored;
    return;
  }
  ++counters_.received;
  if (handler_) handler_(*t);
}

// After each (re)subscription: what was published while this host was not
// listening is in the hash.
void BreakerBus::readSnapshot() {
  if (!snapshot_wanted_ || snapshot_reading_ || !client_.connected()) return;
  snapshot_reading_ = true;
  snapshot_wanted_ = false;
  client_.command({"HGETALL", state_key_}, [this](RedisReply reply) {
    snapshot_reading_ = false;
    if (!reply.ok() || reply.type != RedisReply::Type::Array) {
      snapshot_wanted_ = true;  // again once the command connection is (back) up
      return;
    }
    // Field, value, field, value...: only the values matter, they name their breaker.
    for (size_t i = 1; i < reply.elements.size(); i += 2) receive(reply.elements[i].str);
  });
}

}  // namespace phalanx::worker
