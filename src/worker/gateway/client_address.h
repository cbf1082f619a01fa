// Who the client is, for limits keyed by IP: the peer, or, when the peer is
// a trusted proxy, what its X-Forwarded-For says.
//
// Contract (nginx's real_ip with real_ip_recursive on):
// - A peer outside `trusted` is the client, whatever X-Forwarded-For says: a
//   client cannot choose the bucket it is counted in.
// - From a trusted peer, the X-Forwarded-For entries (every such header, in
//   order, comma-separated) are read right to left, skipping addresses that
//   are themselves trusted; the first one that is not is the client. If all
//   are trusted, the leftmost is. An entry that is not an IP address ends the
//   walk: the last address before it (or the peer) is the client.
// - The result is an IP address as text; it views `peer_text`, the request's
//   header bytes, or `storage`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shared/cidr.h"
#include "worker/http/exchange.h"
#include "worker/http/http_parser.h"

namespace phalanx::worker {

std::string_view clientAddress(const ClientInfo& client, const Request& request,
                               const std::vector<shared::Cidr>& trusted);

}  // namespace phalanx::worker
