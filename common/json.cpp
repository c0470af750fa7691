#include "common/json.hpp"

#include "common/error.hpp"

namespace berth {

size_t json_depth(std::string_view text, size_t limit) {
  size_t depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
    case '"': in_string = true; break;
    case '[':
    case '{':
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
      break;
    case ']':
    case '}':
      if (depth > 0) --depth;
      break;
    default: break;
    }
  }
  return max;
}

namespace {

template <typename Json>
Json parse_bounded(std::string_view text, std::string_view what, size_t max_depth) {
  if (json_depth(text, max_depth) > max_depth)
    fail_code(EINVAL, "{}: JSON nested deeper than {} levels", what, max_depth);
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) fail_code(EINVAL, "{}: not valid JSON", what);
  return j;
}

} // namespace

nlohmann::json parse_untrusted_json(std::string_view text, std::string_view what, size_t max_depth) {
  return parse_bounded<nlohmann::json>(text, what, max_depth);
}

nlohmann::ordered_json parse_untrusted_ordered_json(std::string_view text, std::string_view what, size_t max_depth) {
  return parse_bounded<nlohmann::ordered_json>(text, what, max_depth);
}

namespace {
const json& null_json() {
  static const json n;
  return n;
}
} // namespace

const char* json_type_name(const json& j) {
  switch (j.type()) {
  case json::value_t::null: return "null";
  case json::value_t::object: return "object";
  case json::value_t::array: return "array";
  case json::value_t::string: return "string";
  case json::value_t::boolean: return "boolean";
  case json::value_t::number_float: return "number (float)";
  case json::value_t::number_integer:
  case json::value_t::number_unsigned: return "number";
  default: return "value";
  }
}

void JsonView::bad(std::string_view what) const { fail("{}: {}", path_, what); }

void JsonView::expect_object() const {
  if (!j_->is_object()) bad(fmt::format("expected an object, got {}", json_type_name(*j_)));
}

JsonView JsonView::operator[](std::string_view key) const {
  std::string sub = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (j_->is_null()) return JsonView(null_json(), sub);
  expect_object();
  auto it = j_->find(key);
  if (it == j_->end()) return JsonView(null_json(), sub);
  return JsonView(*it, sub);
}

JsonView JsonView::at(size_t i) const {
  return JsonView((*j_)[i], fmt::format("{}[{}]", path_, i));
}

std::string JsonView::as_string() const {
  if (!j_->is_string()) bad(fmt::format("expected a string, got {}", json_type_name(*j_)));
  return j_->get<std::string>();
}

int64_t JsonView::as_int() const {
  if (j_->is_number_unsigned()) {
    auto v = j_->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) bad("number out of range");
    return static_cast<int64_t>(v);
  }
  if (!j_->is_number_integer()) bad(fmt::format("expected an integer, got {}", json_type_name(*j_)));
  return j_->get<int64_t>();
}

uint64_t JsonView::as_uint() const {
  if (j_->is_number_unsigned()) return j_->get<uint64_t>();
  if (j_->is_number_integer()) {
    auto v = j_->get<int64_t>();
    if (v < 0) bad(fmt::format("expected a non-negative integer, got {}", v));
    return static_cast<uint64_t>(v);
  }
  bad(fmt::format("expected a non-negative integer, got {}", json_type_name(*j_)));
}

uint32_t JsonView::as_u32() const {
  auto v = as_uint();
  if (v > UINT32_MAX) bad(fmt::format("{} is out of range for a 32-bit value", v));
  return static_cast<uint32_t>(v);
}

int32_t JsonView::as_i32() const {
  auto v = as_int();
  if (v < INT32_MIN || v > INT32_MAX) bad(fmt::format("{} is out of range for a 32-bit value", v));
  return static_cast<int32_t>(v);
}

bool JsonView::as_bool() const {
  if (!j_->is_boolean()) bad(fmt::format("expected a boolean, got {}", json_type_name(*j_)));
  return j_->get<bool>();
}

std::vector<std::string> JsonView::as_string_list() const {
  std::vector<std::string> out;
  if (j_->is_null()) return out;
  if (!j_->is_array()) bad(fmt::format("expected an array of strings, got {}", json_type_name(*j_)));
  out.reserve(j_->size());
  for (size_t i = 0; i < j_->size(); i++) out.push_back(at(i).as_string());
  return out;
}

std::optional<std::string> JsonView::opt_string(std::string_view key) const {
  auto v = (*this)[key];
  if (v.is_null()) return std::nullopt;
  return v.as_string();
}

std::optional<int64_t> JsonView::opt_int(std::string_view key) const {
  auto v = (*this)[key];
  if (v.is_null()) return std::nullopt;
  return v.as_int();
}

std::optional<uint64_t> JsonView::opt_uint(std::string_view key) const {
  auto v = (*this)[key];
  if (v.is_null()) return std::nullopt;
  return v.as_uint();
}

std::optional<bool> JsonView::opt_bool(std::string_view key) const {
  auto v = (*this)[key];
  if (v.is_null()) return std::nullopt;
  return v.as_bool();
}

std::vector<std::string> JsonView::string_list(std::string_view key) const {
  return (*this)[key].as_string_list();
}

void JsonView::each(const std::function<void(const JsonView&)>& fn) const {
  if (j_->is_null()) return;
  if (!j_->is_array()) bad(fmt::format("expected an array, got {}", json_type_name(*j_)));
  for (size_t i = 0; i < j_->size(); i++) fn(at(i));
}

void JsonView::each_member(const std::function<void(const std::string&, const JsonView&)>& fn) const {
  if (j_->is_null()) return;
  expect_object();
  for (auto it = j_->begin(); it != j_->end(); ++it)
    fn(it.key(), JsonView(it.value(), path_.empty() ? it.key() : path_ + "." + it.key()));
}

std::optional<size_t> first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    unsigned char c = b(0);
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; // range of the second byte
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else return i;
    if (i + len > s.size()) return i;
    if (len > 1 && (b(1) < lo || b(1) > hi)) return i;
    for (size_t k = 2; k < len; k++)
      if ((b(k) & 0xc0) != 0x80) return i;
    i += len;
  }
  return std::nullopt;
}

} // namespace berth
