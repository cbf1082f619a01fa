// The request target and the Host header, read strictly (RFC 9112 3.2,
// RFC 3986 3.2): whatever phalanx reads differently from the upstream behind
// it is a way past its routes.
//
// splitTarget(target, method_is_options, out, why):
// - origin-form   "/path?query"                    → path, query
// - absolute-form "http://authority/path?query"    → authority, path ("/" when
//   empty), query; the scheme is http or https (any case); userinfo ("u@h") and
//   an empty authority are refused (RFC 9110 4.2.4)
// - asterisk-form "*"                              → only with OPTIONS
// - authority-form belongs to CONNECT, which the parser refuses before this.
// Refused (false, `*why` says why, for a 400): anything else, a fragment ('#'
// has no place in a request), and an authority that isValidAuthority() refuses.
// The views in `out` point into `target`.
//
// isValidAuthority(text): host [":" port] with host an IP-literal ("[v6]"),
// an IPv4 address or a non-empty reg-name (unreserved, pct-encoded and
// sub-delims), and port 1-5 digits up to 65535 when the colon is there.
#pragma once

#include <string_view>

namespace phalanx::worker {

enum class TargetForm { Origin, Absolute, Asterisk };

struct TargetParts {
  TargetForm form = TargetForm::Origin;
  std::string_view authority;  // absolute-form only
  std::string_view path;       // starts with '/', or "*" in asterisk-form
  std::string_view query;      // without its '?'
  bool has_query = false;
};

bool splitTarget(std::string_view target, bool method_is_options, TargetParts& out,
                 const char** why);

bool isValidAuthority(std::string_view text);

}  // namespace phalanx::worker
