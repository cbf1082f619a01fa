#include "ctl/answer.h"

#include <algorithm>
#include <cstdio>

#include "ctl/access_table.h"
#include "ctl/route_table.h"
#include "ctl/status_table.h"
#include "ctl/upstream_table.h"

namespace phalanx::ctl {

namespace {

using simdjson::dom::element;

// How much of a bad answer a message quotes.
constexpr size_t kQuoteBytes = 120;

std::string quoteStart(std::string_view line) {
  std::string quoted;
  for (char c : line.substr(0, kQuoteBytes)) {
    auto u = static_cast<unsigned char>(c);
    quoted += u < 0x20 || u == 0x7f ? '?' : c;
  }
  if (line.size() > kQuoteBytes) quoted += "...";
  return quoted.empty() ? "(empty line)" : quoted;
}

std::optional<uint64_t> unsignedMember(element object, const char* key) {
  uint64_t n = 0;
  if (object.at_key(key).get_uint64().get(n) != simdjson::SUCCESS) return std::nullopt;
  return n;
}

// The "text" of help and show: printed as it came, newline-terminated.
std::optional<std::string> textOf(const Answer& answer, std::string* error) {
  std::string_view text;
  if (answer.root().at_key("text").get_string().get(text) != simdjson::SUCCESS) {
    *error = "no \"text\" string in the answer";
    return std::nullopt;
  }
  std::string out(text);
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

}  // namespace

std::optional<Answer> Answer::parse(std::string_view line, std::string* error) {
  Answer answer;
  answer.parser_ = std::make_unique<simdjson::dom::parser>();
  auto fail = [&](const std::string& why) {
    *error = why + ": " + quoteStart(line);
    return std::nullopt;
  };
  simdjson::error_code code = answer.parser_->parse(line.data(), line.size()).get(answer.root_);
  if (code != simdjson::SUCCESS) {
    return fail(std::string("not JSON (") + simdjson::error_message(code) + ")");
  }
  if (answer.root_.type() != simdjson::dom::element_type::OBJECT) return fail("not an object");
  uint64_t version = 0;
  if (answer.root_.at_key("version").get_uint64().get(version) != simdjson::SUCCESS) {
    return fail("no protocol \"version\"");
  }
  if (version != kProtocolVersion) {
    return fail("protocol version " + std::to_string(version) + ", phalanxctl speaks " +
                std::to_string(kProtocolVersion));
  }
  if (answer.root_.at_key("ok").get_bool().get(answer.ok_) != simdjson::SUCCESS) {
    return fail("no boolean \"ok\"");
  }
  if (!answer.ok_) {
    std::string_view reason;
    if (answer.root_.at_key("error").get_string().get(reason) == simdjson::SUCCESS &&
        !reason.empty()) {
      answer.error_ = std::string(reason);
    } else {
      answer.error_ = "the master failed without saying why";
    }
  }
  return answer;
}

std::optional<std::string> renderAnswer(Command command, const Answer& answer, uint64_t now_ms,
                                        std::string* error) {
  element root = answer.root();
  switch (command) {
    case Command::Status: {
      std::optional<StatusView> status = readStatus(root, error);
      if (!status) return std::nullopt;
      std::string text = renderStatus(*status, now_ms);
      // Then the busiest routes, when the master reports them (it lists them
      // busiest first) and any took traffic; a row it cannot read drops the
      // section, never the status.
      simdjson::dom::array routes;
      std::string ignored;
      if (root.at_key("routes").get_array().get(routes) == simdjson::SUCCESS && routes.size() > 0) {
        uint64_t busiest = 0;
        bool read =
            (*routes.begin()).at_key("requests").get_uint64().get(busiest) == simdjson::SUCCESS;
        std::optional<std::string> top = renderRoutes(root, &ignored, kStatusTopRoutes);
        if (read && busiest > 0 && top) text += "\n" + *top;
      }
      return text;
    }
    case Command::Reload: {
      std::optional<uint64_t> generation = unsignedMember(root, "generation");
      std::optional<uint64_t> workers = unsignedMember(root, "workers");
      if (!generation || !workers) {
        *error = "a reload answer needs \"generation\" and \"workers\"";
        return std::nullopt;
      }
      return "reload ok: generation " + std::to_string(*generation) + ", " +
             std::to_string(*workers) + (*workers == 1 ? " worker\n" : " workers\n");
    }
    case Command::Upgrade: {
      std::optional<uint64_t> next = unsignedMember(root, "new_master");
      std::optional<uint64_t> old = unsignedMember(root, "old_master");
      if (!next || !old) {
        *error = "an upgrade answer needs \"new_master\" and \"old_master\"";
        return std::nullopt;
      }
      return "upgrade ok: master pid " + std::to_string(*next) + " serves; pid " +
             std::to_string(*old) + " drains and exits\n";
    }
    case Command::Scale: {
      std::optional<uint64_t> workers = unsignedMember(root, "workers");
      if (!workers) {
        *error = "a scale answer needs \"workers\"";
        return std::nullopt;
      }
      return "scale ok: " + std::to_string(*workers) + (*workers == 1 ? " worker\n" : " workers\n");
    }
    case Command::Stop: return std::string("stop ok: phalanx is stopping\n");
    case Command::Upstreams: {
      std::optional<std::vector<UpstreamRow>> upstreams = readUpstreams(root, error);
      if (!upstreams) return std::nullopt;
      return renderUpstreams(*upstreams, now_ms);
    }
    case Command::BreakerOpen:
    case Command::BreakerClose: {
      std::string_view upstream, target, state;
      bool changed = false;
      if (root.at_key("upstream").get_string().get(upstream) != simdjson::SUCCESS ||
          root.at_key("target").get_string().get(target) != simdjson::SUCCESS ||
          root.at_key("breaker").get_string().get(state) != simdjson::SUCCESS ||
          root.at_key("changed").get_bool().get(changed) != simdjson::SUCCESS) {
        *error = "a breaker answer needs \"upstream\", \"target\", \"breaker\" and \"changed\"";
        return std::nullopt;
      }
      return "breaker " + std::string(upstream) + " " + std::string(target) + ": " +
             std::string(state) + (changed ? "\n" : " (it already was)\n");
    }
    case Command::Keys: {
      simdjson::dom::array keys;
      if (root.at_key("keys").at_key("keys").get_array().get(keys) != simdjson::SUCCESS) {
        *error = "a keys answer needs \"keys\"";
        return std::nullopt;
      }
      std::string out = "ID                                TIER          REQUESTS    REFUSED\n";
      for (simdjson::dom::element k : keys) {
        std::string_view id, tier;
        uint64_t requests = 0, refused = 0;
        if (k.at_key("id").get_string().get(id) != simdjson::SUCCESS ||
            k.at_key("tier").get_string().get(tier) != simdjson::SUCCESS ||
            k.at_key("requests").get_uint64().get(requests) != simdjson::SUCCESS ||
            k.at_key("refused").get_uint64().get(refused) != simdjson::SUCCESS) {
          *error = "a key row needs id, tier, requests and refused";
          return std::nullopt;
        }
        char line[200];
        std::snprintf(line, sizeof line, "%-33.*s %-13.*s %8llu %10llu\n",
                      static_cast<int>(std::min<size_t>(id.size(), 64)), id.data(),
                      static_cast<int>(std::min<size_t>(tier.size(), 31)), tier.data(),
                      static_cast<unsigned long long>(requests),
                      static_cast<unsigned long long>(refused));
        out += line;
      }
      if (keys.size() == 0) out = "no keys seen yet\n";
      return out;
    }
    case Command::Access: return renderAccess(root, error);
    case Command::Routes: return renderRoutes(root, error);
    case Command::Errors: return renderErrors(root, error);
    case Command::CachePurge: {
      std::optional<uint64_t> workers = unsignedMember(root, "workers");
      std::optional<uint64_t> done = unsignedMember(root, "workers_done");
      if (!workers || !done) {
        *error = "a cache purge answer needs \"workers\" and \"workers_done\"";
        return std::nullopt;
      }
      std::string out = "cache purge ok: " + std::to_string(*done) + " of " +
                        std::to_string(*workers) + " workers emptied their cache";
      uint64_t removed = 0;
      simdjson::dom::element redis;
      if (root.at_key("redis_removed").get(redis) == simdjson::SUCCESS) {
        out += redis.get_uint64().get(removed) == simdjson::SUCCESS
                   ? "; Redis: " + std::to_string(removed) + " keys removed"
                   : "; Redis: not done yet";
      }
      return out + "\n";
    }
    case Command::ShowInfo:
    case Command::ShowStat:
    case Command::Help: return textOf(answer, error);
  }
  *error = "unknown command";
  return std::nullopt;
}

}  // namespace phalanx::ctl
