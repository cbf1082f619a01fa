#include "worker/http/response.h"

#include <cstdio>

#include "shared/json_writer.h"

namespace phalanx::worker {

using shared::appendJsonEscaped;

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

Response makeResponse(int status, std::string body, const HeaderList& headers) {
  Response r;
  r.status = status;
  r.head.reserve(128);
  r.head += "HTTP/1.1 ";
  r.head += std::to_string(status);
  r.head += ' ';
  r.head += reasonPhrase(status);
  r.head += "\r\nServer: phalanx\r\n";
  // 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 8.6).
  bool bodyless = status < 200 || status == 204 || status == 304;
  if (!bodyless) {
    r.head += "Content-Length: ";
    r.head += std::to_string(body.size());
    r.head += "\r\n";
  }
  for (const auto& [name, value] : headers) {
    r.head += name;
    r.head += ": ";
    r.head += value;
    r.head += "\r\n";
  }
  if (!bodyless) r.body = std::move(body);
  return r;
}

Response makeJsonError(int status, std::string_view message, const HeaderList& extra) {
  std::string body = "{\"error\":\"";
  appendJsonEscaped(body, message);
  body += "\",\"status\":";
  body += std::to_string(status);
  body += "}\n";
  HeaderList headers = {{"Content-Type", "application/json"}};
  headers.insert(headers.end(), extra.begin(), extra.end());
  return makeResponse(status, std::move(body), headers);
}

void appendConnectionField(std::string& out, ConnectionHeader connection) {
  switch (connection) {
    case ConnectionHeader::None: break;
    case ConnectionHeader::KeepAlive: out += "Connection: keep-alive\r\n"; break;
    case ConnectionHeader::Close: out += "Connection: close\r\n"; break;
  }
}

void appendResponse(std::string& out, const Response& response, std::string_view date,
                    ConnectionHeader connection, bool head_only, std::string_view extra) {
  out += response.head;
  out += extra;
  out += "Date: ";
  out += date;
  switch (connection) {
    case ConnectionHeader::None: out += "\r\n\r\n"; break;
    case ConnectionHeader::KeepAlive: out += "\r\nConnection: keep-alive\r\n\r\n"; break;
    case ConnectionHeader::Close: out += "\r\nConnection: close\r\n\r\n"; break;
  }
  if (!head_only) out += response.body;
}

}  // namespace phalanx::worker
