// HTTP/1.1 responses as bytes. A response is split into what is fixed (status
// line, Server, Content-Length, configured headers, body), rendered once when
// the route is built, and what changes per request (Date, Connection), added
// when it is written. Writing is a few appends to the connection's buffer.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phalanx::worker {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct Response {
  int status = 200;
  std::string head;  // "HTTP/1.1 200 OK\r\nServer: phalanx\r\nContent-Length: N\r\n..." (no Date)
  std::string body;
};

// Renders the fixed part. `headers` must already be valid (config validation
// refuses CR/LF and the headers phalanx writes itself).
Response makeResponse(int status, std::string body, const HeaderList& headers = {});

// A JSON error body {"error": message, "status": status} with its content type,
// and `extra` headers (a 405's Allow).
Response makeJsonError(int status, std::string_view message, const HeaderList& extra = {});

enum class ConnectionHeader { None, KeepAlive, Close };

// Appends the whole response to `out`. `head_only` (HEAD requests) keeps
// Content-Length but leaves the body out. `extra`: header lines decided per
// request ("Name: value\r\n" each: rate-limit state, X-Cache), added as they are.
void appendResponse(std::string& out, const Response& response, std::string_view date,
                    ConnectionHeader connection, bool head_only, std::string_view extra = {});

// Appends "Connection: keep-alive" or "Connection: close" and its CRLF, or
// nothing for None: for heads built field by field (a proxied or cached answer).
void appendConnectionField(std::string& out, ConnectionHeader connection);

std::string_view reasonPhrase(int status);

}  // namespace phalanx::worker
