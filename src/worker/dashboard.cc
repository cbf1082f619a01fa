#include "worker/dashboard.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace phalanx::worker {

namespace {

// "'sha256-BASE64'": the CSP source expression that allows one inline element
// whose text is exactly `text` (CSP3, "hash-source").
std::string hashSource(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    std::fprintf(stderr, "phalanx: EVP_Digest(SHA256, %zu bytes) failed\n", text.size());
    std::abort();
  }
  unsigned char base64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int written = EVP_EncodeBlock(base64, digest, static_cast<int>(length));
  return "'sha256-" + std::string(reinterpret_cast<char*>(base64), static_cast<size_t>(written)) +
         "'";
}

// The hash sources of every `<tag>...</tag>` element of `html`, space-separated.
std::string elementHashes(std::string_view html, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  std::string sources;
  for (size_t at = html.find(open); at != std::string_view::npos; at = html.find(open, at)) {
    size_t start = at + open.size();
    size_t end = html.find(close, start);
    if (end == std::string_view::npos) break;
    sources += (sources.empty() ? "" : " ") + hashSource(html.substr(start, end - start));
    at = end + close.size();
  }
  // No element: nothing inline may run or apply.
  return sources.empty() ? "'none'" : sources;
}

void appendEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
}

}  // namespace

std::string renderDashboard(std::string_view page, std::string_view status_path) {
  size_t at = page.find(kStatusPathMarker);
  if (at == std::string_view::npos) return std::string(page);
  std::string out;
  out.reserve(page.size() + status_path.size());
  out.append(page.substr(0, at));
  appendEscaped(out, status_path);
  out.append(page.substr(at + kStatusPathMarker.size()));
  return out;
}

std::string dashboardPolicy(std::string_view html) {
  return "default-src 'none'; script-src " + elementHashes(html, "script") + "; style-src " +
         elementHashes(html, "style") +
         "; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
}

Response makeDashboardResponse(std::string_view status_path) {
  std::string html = renderDashboard(kDashboardPage, status_path);
  std::string policy = dashboardPolicy(html);
  return makeResponse(200, std::move(html),
                      {{"Content-Type", "text/html; charset=utf-8"},
                       {"Content-Security-Policy", std::move(policy)},
                       {"Cache-Control", "no-store"},
                       {"X-Content-Type-Options", "nosniff"},
                       {"Referrer-Policy", "no-referrer"}});
}

}  // namespace phalanx::worker
