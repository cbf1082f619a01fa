#include "worker/dashboard.h"

#include <doctest/doctest.h>

#include "builtin_route.h"
#include "parsed_request.h"
#include "worker/handlers.h"
#include "worker/router.h"

using namespace phalanx;
using phalanx::worker::Router;

namespace {

size_t count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string headerValue(const std::string& head, const std::string& name) {
  size_t at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  return head.substr(at, head.find("\r\n", at) - at);
}

}  // namespace

TEST_CASE("dashboard: the embedded page is self-contained, with one place for the status path") {
  std::string_view page = worker::kDashboardPage;
  CHECK(page.starts_with("<!doctype html>"));
  CHECK(page.find("</html>") != std::string_view::npos);
  CHECK(count(page, worker::kStatusPathMarker) == 1);
  // One element of each, so the policy's two hashes cover all inline code.
  CHECK(count(page, "<script") == 1);
  CHECK(count(page, "<style") == 1);
  // Nothing loaded from elsewhere, and no data written as markup.
  CHECK(page.find("src=") == std::string_view::npos);
  CHECK(page.find("href=") == std::string_view::npos);
  CHECK(page.find("@import") == std::string_view::npos);
  CHECK(page.find("url(") == std::string_view::npos);
  CHECK(page.find("innerHTML") == std::string_view::npos);
  CHECK(page.find("insertAdjacentHTML") == std::string_view::npos);
  CHECK(page.find("document.write") == std::string_view::npos);
  CHECK(page.size() < 30 * 1024);
}

TEST_CASE("dashboard: the status path goes in once, escaped for an attribute") {
  std::string page = "<meta content=\"{{STATUS_PATH}}\"> {{STATUS_PATH}}";
  CHECK(worker::renderDashboard(page, "/health/status") ==
        "<meta content=\"/health/status\"> {{STATUS_PATH}}");
  CHECK(worker::renderDashboard(page, "/a\"b'<c>&d") ==
        "<meta content=\"/a&quot;b&#39;&lt;c&gt;&amp;d\"> {{STATUS_PATH}}");
  CHECK(worker::renderDashboard("no marker", "/s") == "no marker");
  std::string real = worker::renderDashboard(worker::kDashboardPage, "/x/status");
  CHECK(real.find("content=\"/x/status\"") != std::string::npos);
  CHECK(real.find(worker::kStatusPathMarker) == std::string::npos);
}

TEST_CASE("dashboard: the policy allows exactly its inline script and style, by SHA-256") {
  // base64(sha256("abc")) and base64(sha256("p{}")), as python's hashlib gives them.
  CHECK(worker::dashboardPolicy("<style>p{}</style><script>abc</script>") ==
        "default-src 'none'; script-src 'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='; "
        "style-src 'sha256-gG2yISYereRMiG2lMXrbiUgi0Ubw9p7QCeWcroOvy9Y='; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  // Without an element, nothing inline is allowed at all.
  std::string bare = worker::dashboardPolicy("<p>hi</p>");
  CHECK(bare.find("script-src 'none';") != std::string::npos);
  CHECK(bare.find("style-src 'none';") != std::string::npos);
  CHECK(count(worker::dashboardPolicy(worker::kDashboardPage), "'sha256-") == 2);
}

TEST_CASE("dashboard: the router renders the page once, with the status route's path") {
  shared::RouteConfig status = builtin("/ops/status", shared::Builtin::Status);
  Router router({builtin("/dashboard", shared::Builtin::Dashboard), status});
  const worker::Route* route = router.match("/dashboard");
  REQUIRE(route != nullptr);
  const worker::Response& r = route->static_response;
  CHECK(r.status == 200);
  CHECK(r.body.find("content=\"/ops/status\"") != std::string::npos);
  CHECK(headerValue(r.head, "Content-Type") == "text/html; charset=utf-8");
  CHECK(headerValue(r.head, "Content-Security-Policy") == worker::dashboardPolicy(r.body));
  CHECK(headerValue(r.head, "Cache-Control") == "no-store");
  CHECK(headerValue(r.head, "X-Content-Type-Options") == "nosniff");
  CHECK(headerValue(r.head, "Content-Length") == std::to_string(r.body.size()));
}

TEST_CASE("dashboard: GET answers the page, HEAD its headers") {
  shared::Config config;
  config.routes = {builtin("/health/status", shared::Builtin::Status),
                   builtin("/dashboard", shared::Builtin::Dashboard)};
  shared::SharedRegion region = shared::SharedRegion::create(2, 4);
  worker::Handlers handlers(config, {}, region);
  std::string get;
  CHECK(handlers.respond(test::parsedRequest("GET", "/dashboard"), worker::ConnectionHeader::None,
                         get) == 200);
  CHECK(get.ends_with("</html>\n"));
  CHECK(get.find("content=\"/health/status\"") != std::string::npos);
  std::string head;
  CHECK(handlers.respond(test::parsedRequest("HEAD", "/dashboard"), worker::ConnectionHeader::None,
                         head) == 200);
  CHECK(head.ends_with("\r\n\r\n"));
  CHECK(get.starts_with(head.substr(0, head.find("\r\nDate: "))));
  CHECK(head.size() < get.size());
}
