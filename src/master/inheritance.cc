#include "master/inheritance.h"

#include <charconv>

namespace phalanx::master {

namespace {

constexpr std::string_view kHeader = "phalanx-inherit 1";

// The next space-separated word of `line`, consumed.
std::string_view word(std::string_view* line) {
  size_t end = line->find(' ');
  std::string_view w = line->substr(0, end);
  line->remove_prefix(end == std::string_view::npos ? line->size() : end + 1);
  return w;
}

template <typename T>
bool number(std::string_view text, T* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string formatInheritance(const Inheritance& in) {
  std::string text(kHeader);
  text += "\nold-master " + std::to_string(in.old_master);
  text += "\ngeneration " + std::to_string(in.generation);
  text += "\nshm " + std::to_string(in.shm_fd);
  text += "\nready " + std::to_string(in.ready_fd);
  for (const auto& s : in.sockets) {
    text += "\nlisten " + std::to_string(s.slot) + " " + std::to_string(s.fd) + " " + s.address;
  }
  return text + "\n";
}

std::optional<Inheritance> parseInheritance(std::string_view text, std::string* error) {
  Inheritance in;
  bool header = false;
  size_t line_number = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++line_number;
    if (line.empty()) continue;
    if (!header) {
      if (line != kHeader) {
        *error = "line 1: expected \"" + std::string(kHeader) + "\"";
        return std::nullopt;
      }
      header = true;
      continue;
    }
    std::string_view rest = line;
    std::string_view key = word(&rest);
    bool ok = false;
    if (key == "old-master") {
      ok = number(word(&rest), &in.old_master) && rest.empty();
    } else if (key == "generation") {
      ok = number(word(&rest), &in.generation) && rest.empty();
    } else if (key == "shm") {
      ok = number(word(&rest), &in.shm_fd) && rest.empty();
    } else if (key == "ready") {
      ok = number(word(&rest), &in.ready_fd) && rest.empty();
    } else if (key == "listen") {
      InheritedSocket s;
      ok = number(word(&rest), &s.slot) && number(word(&rest), &s.fd) && !rest.empty() &&
           rest.find(' ') == std::string_view::npos;
      s.address = std::string(rest);
      if (ok) in.sockets.push_back(std::move(s));
    } else {
      ok = true;  // a newer build's item: not for this one
    }
    if (!ok) {
      *error =
          "line " + std::to_string(line_number) + ": cannot read \"" + std::string(line) + "\"";
      return std::nullopt;
    }
  }
  if (!header || in.shm_fd < 0 || in.ready_fd < 0 || in.old_master <= 0) {
    *error = "incomplete: needs the header, old-master, shm and ready";
    return std::nullopt;
  }
  return in;
}

}  // namespace phalanx::master
