// A TCP address as written in the config: "127.0.0.1:8080", "[::1]:8080",
// "*:8080" (all IPv4 interfaces), "localhost:8080" (127.0.0.1). No DNS: a
// listener must be an address, and lookups never happen on a request path.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace phalanx::shared {

struct Address {
  std::string text;            // as written, for messages: "127.0.0.1:8080"
  sockaddr_storage storage{};  // ready for bind()/connect()
  socklen_t length = 0;
  uint16_t port = 0;

  const sockaddr* sockaddrPtr() const { return reinterpret_cast<const sockaddr*>(&storage); }
  bool operator==(const Address& other) const;
};

// Returns the address, or nullopt with `error` set to why it is not one
// (e.g. "expected HOST:PORT", "port must be 1-65535").
std::optional<Address> parseAddress(std::string_view text, std::string* error);

}  // namespace phalanx::shared
