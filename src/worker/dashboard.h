// The dashboard builtin: one self-contained HTML page (src/worker/dashboard.html,
// compiled in by cmake/embed_text.cmake) whose inline script polls the config's
// status route and renders it: workers, upstreams and breakers, limits, cache,
// routes and recent errors, and a clear mark when the gateway stops answering.
//
// The page never changes while a worker runs: the router renders the whole
// response once (the status route's path put in, the headers computed) and
// every request writes those bytes.
//
// Its Content-Security-Policy lets it load nothing from anywhere: no external
// script, style, font or image; only its own inline <script> and <style>
// (allowed by their SHA-256 hashes, so injected markup could run nothing) and
// fetches to its own origin.
#pragma once

#include <string>
#include <string_view>

#include "worker/http/response.h"

namespace phalanx::worker {

// dashboard.html as written; kStatusPathMarker stands once where the status
// route's path goes (an attribute value).
extern const std::string_view kDashboardPage;
inline constexpr std::string_view kStatusPathMarker = "{{STATUS_PATH}}";

// `page` with the first kStatusPathMarker replaced by `status_path`,
// HTML-escaped (& < > " ' as character references).
std::string renderDashboard(std::string_view page, std::string_view status_path);

// The Content-Security-Policy for `html`: default-src 'none', script-src and
// style-src the 'sha256-...' hashes of the text of each <script> and <style>
// element (written exactly so, without attributes), connect-src 'self', and
// no base URI, form target or framing.
std::string dashboardPolicy(std::string_view html);

// The 200 the dashboard route answers with: renderDashboard(kDashboardPage,
// status_path), text/html, its policy, no-store, nosniff, no referrer.
Response makeDashboardResponse(std::string_view status_path);

}  // namespace phalanx::worker
