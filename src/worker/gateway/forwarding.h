// What a request looks like to the upstream, and its response to the client:
// RFC 9110 7.6 for a proxy. Pure functions over a parsed request or response
// head, so unit tests drive them without sockets.
//
// Upstream request:
// - Request line: the method, the *normalized* path (what the route matched,
//   so the upstream cannot read a path a route did not see) and the query as
//   sent, always origin-form, HTTP/1.1 (the upstream connection is kept alive
//   for the pool whatever the client's version).
// - Dropped: hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection, TE,
//   Trailer, Transfer-Encoding, Upgrade) and every field Connection names;
//   Expect (phalanx answers 100-continue itself); Content-Length (written
//   again from the parsed framing); X-Forwarded-Proto, X-Forwarded-Host and
//   X-Request-Id (replaced: a client must not choose what the upstream trusts).
// - X-Forwarded-For: the client's values, in order, then the peer address.
// - Added: X-Forwarded-Proto, X-Forwarded-Host (the request's host),
//   X-Request-Id, and Content-Length or Transfer-Encoding: chunked (the body
//   is re-chunked: extensions and trailers are not forwarded).
// Client response:
// - Status line HTTP/1.1 with the upstream's status; hop-by-hop fields and
//   those Connection names dropped, Content-Length and Transfer-Encoding
//   written from the framing the exchange chose, X-Request-Id set, Date added
//   when the upstream sent none, Connection from the client side's decision.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/gateway/upstream_response_parser.h"
#include "worker/http/http_parser.h"
#include "worker/http/response.h"

namespace phalanx::worker {

struct ForwardContext {
  std::string_view client_ip;
  std::string_view proto = "http";
  std::string_view request_id;
};

// Appends the head of the request phalanx sends upstream.
void appendUpstreamRequestHead(std::string& out, const Request& request, const ForwardContext& ctx);

// How the response body travels to the client.
enum class ClientFraming {
  None,        // no body (1xx, 204, 304): no length header at all
  HeadLength,  // a response to HEAD: the upstream's Content-Length, as sent
  Length,      // Content-Length: `length`
  Chunked,     // Transfer-Encoding: chunked, re-encoded by the exchange
  UntilClose,  // no length: the body ends when the connection closes (HTTP/1.0 client)
};

// Appends the response head for the client. `date` is used when the upstream
// sent no Date. `extra`: header lines phalanx adds ("Name: value\r\n" each:
// rate-limit state, X-Cache).
void appendClientResponseHead(std::string& out, const ResponseHead& head, ClientFraming framing,
                              uint64_t length, ConnectionHeader connection,
                              std::string_view request_id, std::string_view date,
                              std::string_view extra = {});

// The field names a response's Connection fields list: they concern one
// connection, so they are neither forwarded nor replayed from a cache.
std::vector<std::string_view> connectionOptions(const ResponseHead& head);
// Whether `name` is among `options` (ASCII case ignored).
bool namedBy(std::string_view name, const std::vector<std::string_view>& options);

// Appends one chunk of a chunked body (nothing for an empty one), and the
// last chunk.
void appendChunk(std::string& out, const char* data, size_t length);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace phalanx::worker
