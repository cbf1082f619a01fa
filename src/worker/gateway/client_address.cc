#include "worker/gateway/client_address.h"

#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

bool trustedIp(std::string_view text, const std::vector<shared::Cidr>& trusted, bool* valid) {
  uint8_t bytes[16];
  int family = shared::parseIp(text, bytes);
  *valid = family != 0;
  if (!*valid) return false;
  for (const shared::Cidr& range : trusted) {
    if (range.contains(family, bytes)) return true;
  }
  return false;
}

}  // namespace

std::string_view clientAddress(const ClientInfo& client, const Request& request,
                               const std::vector<shared::Cidr>& trusted) {
  if (trusted.empty() || client.peer == nullptr || !shared::anyContains(trusted, client.peer)) {
    return client.address;
  }
  // Every X-Forwarded-For field, last one first, each read right to left.
  std::string_view chosen = client.address;
  for (size_t i = request.headerCount(); i-- > 0;) {
    auto [name, value] = request.header(i);
    if (!equalsLowercase(name, "x-forwarded-for")) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t comma = rest.rfind(',');
      std::string_view entry =
          trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
      bool valid = false;
      bool is_trusted = trustedIp(entry, trusted, &valid);
      if (!valid) return chosen;
      chosen = entry;
      if (!is_trusted) return chosen;
    }
  }
  return chosen;
}

}  // namespace phalanx::worker
