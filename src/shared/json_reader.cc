#include "shared/json_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_set>

namespace phalanx::shared::json {

using simdjson::dom::element_type;

namespace {

std::string formatDouble(double value) {
  char buffer[32];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

const char* jsonType(element value) {
  switch (value.type()) {
    case element_type::ARRAY: return "array";
    case element_type::OBJECT: return "object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: return "number";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "unknown";
}

bool isNumber(element value) {
  element_type type = value.type();
  return type == element_type::INT64 || type == element_type::UINT64 ||
         type == element_type::DOUBLE;
}

std::string inQuotes(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

std::string indexPath(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

void Errors::add(std::string_view path, std::string_view what) {
  std::string line = path.empty() ? "top level" : std::string(path);
  line += ": ";
  line += what;
  std::string clean;
  for (unsigned char c : line) {
    if (c >= 0x20 && c != 0x7f) {
      clean += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      clean += hex;
    }
  }
  lines_.push_back(std::move(clean));
}

std::optional<uint64_t> readUnsigned(Errors& errors, const std::string& path, element value,
                                     AtLeast floor, uint64_t max) {
  std::string expected =
      floor == AtLeast::One ? "expected a positive integer" : "expected a non-negative integer";
  uint64_t number = 0;
  switch (value.type()) {
    case element_type::UINT64: number = value.get_uint64().value_unsafe(); break;
    case element_type::INT64: {
      int64_t signed_number = value.get_int64().value_unsafe();
      if (signed_number < 0) {
        errors.add(path, expected + ", got " + std::to_string(signed_number));
        return std::nullopt;
      }
      number = static_cast<uint64_t>(signed_number);
      break;
    }
    case element_type::DOUBLE: {
      double real = value.get_double().value_unsafe();
      if (real != std::floor(real)) {
        errors.add(path, "expected an integer, got " + formatDouble(real));
        return std::nullopt;
      }
      if (real < 0) {
        errors.add(path, expected + ", got " + formatDouble(real));
        return std::nullopt;
      }
      if (real >= 18446744073709551616.0) {
        errors.add(path, "must be at most " + std::to_string(max));
        return std::nullopt;
      }
      number = static_cast<uint64_t>(real);
      break;
    }
    default: errors.add(path, expected + ", got " + jsonType(value)); return std::nullopt;
  }
  if (floor == AtLeast::One && number == 0) {
    errors.add(path, expected + ", got 0");
    return std::nullopt;
  }
  if (number > max) {
    errors.add(path, "must be at most " + std::to_string(max));
    return std::nullopt;
  }
  return number;
}

std::optional<double> readNumber(Errors& errors, const std::string& path, element value) {
  switch (value.type()) {
    case element_type::UINT64: return static_cast<double>(value.get_uint64().value_unsafe());
    case element_type::INT64: return static_cast<double>(value.get_int64().value_unsafe());
    case element_type::DOUBLE: return value.get_double().value_unsafe();
    default: errors.add(path, std::string("expected a number, got ") + jsonType(value));
  }
  return std::nullopt;
}

bool readString(Errors& errors, const std::string& path, element value, std::string& out,
                bool allow_empty) {
  std::string_view text;
  if (value.get_string().get(text) != simdjson::SUCCESS) {
    errors.add(path, std::string("expected a string, got ") + jsonType(value));
    return false;
  }
  if (text.empty() && !allow_empty) {
    errors.add(path, "must not be empty");
    return false;
  }
  out = text;
  return true;
}

ObjectReader::ObjectReader(Errors& errors, std::string path, element value)
    : errors_(errors), path_(std::move(path)) {
  simdjson::dom::object object;
  if (value.get_object().get(object) != simdjson::SUCCESS) {
    errors_.add(path_, std::string("expected an object, got ") + jsonType(value));
    return;
  }
  valid_ = true;
  std::unordered_set<std::string_view> seen;
  for (simdjson::dom::key_value_pair field : object) {
    if (!seen.insert(field.key).second) {
      errors_.add(pathOf(field.key), "duplicate key");
      continue;
    }
    fields_.emplace_back(field.key, field.value);
  }
}

std::optional<element> ObjectReader::get(std::string_view key) {
  asked_.emplace_back(key);
  for (const auto& [name, value] : fields_) {
    if (name == key) return value;
  }
  return std::nullopt;
}

std::optional<element> ObjectReader::required(std::string_view key) {
  std::optional<element> value = get(key);
  if (!value && valid_) errors_.add(pathOf(key), "required");
  return value;
}

bool ObjectReader::u32(std::string_view key, uint32_t& out, AtLeast floor) {
  uint64_t wide = out;
  if (!u64(key, wide, floor, kMaxU32)) return false;
  out = static_cast<uint32_t>(wide);
  return true;
}

bool ObjectReader::u64(std::string_view key, uint64_t& out, AtLeast floor, uint64_t max) {
  std::optional<element> value = get(key);
  if (!value) return false;
  std::optional<uint64_t> parsed = readUnsigned(errors_, pathOf(key), *value, floor, max);
  if (parsed) out = *parsed;
  return parsed.has_value();
}

bool ObjectReader::number(std::string_view key, double& out) {
  std::optional<element> value = get(key);
  if (!value) return false;
  std::optional<double> parsed = readNumber(errors_, pathOf(key), *value);
  if (parsed) out = *parsed;
  return parsed.has_value();
}

bool ObjectReader::boolean(std::string_view key, bool& out) {
  std::optional<element> value = get(key);
  if (!value) return false;
  if (value->type() != element_type::BOOL) {
    errors_.add(pathOf(key), std::string("expected true or false, got ") + jsonType(*value));
    return false;
  }
  out = value->get_bool().value_unsafe();
  return true;
}

bool ObjectReader::string(std::string_view key, std::string& out, bool allow_empty) {
  std::optional<element> value = get(key);
  return value && readString(errors_, pathOf(key), *value, out, allow_empty);
}

bool ObjectReader::choice(std::string_view key, std::string& out,
                          std::initializer_list<std::string_view> known) {
  std::string text;
  if (!string(key, text)) return false;
  if (std::find(known.begin(), known.end(), text) == known.end()) {
    std::string list;
    for (std::string_view name : known) list += (list.empty() ? "" : ", ") + std::string(name);
    errors_.add(pathOf(key), "unknown value " + inQuotes(text) + " (known: " + list + ")");
    return false;
  }
  out = text;
  return true;
}

void ObjectReader::reportUnknownKeys() {
  if (!valid_ || all_known_) return;
  for (const auto& [key, value] : fields_) {
    if (std::find(asked_.begin(), asked_.end(), key) != asked_.end()) continue;
    std::string what = "unknown key";
    // A near miss is almost always a typo of a real key: name it.
    for (std::string_view candidate : asked_) {
      size_t distance = editDistance(key, candidate);
      if (distance <= 2 && distance * 2 < key.size()) {
        what += " (did you mean " + inQuotes(candidate) + "?)";
        break;
      }
    }
    errors_.add(pathOf(key), what);
  }
}

}  // namespace phalanx::shared::json
