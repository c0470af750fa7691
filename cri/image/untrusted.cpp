#include "cri/image/untrusted.hpp"

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::image {

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

std::string excerpt(std::string_view s, size_t max) {
  // common's quoting (escapes, cut), plus the full size: a cut value says how big it was.
  std::string out = quoted_value(s, max);
  if (s.size() > max) out += fmt::format(" ({} bytes)", s.size());
  return out;
}

std::string describe_json(const nlohmann::json& j) {
  switch (j.type()) {
  case nlohmann::json::value_t::string: return excerpt(j.get_ref<const std::string&>());
  case nlohmann::json::value_t::array: return fmt::format("an array of {} elements", j.size());
  case nlohmann::json::value_t::object: return fmt::format("an object of {} members", j.size());
  case nlohmann::json::value_t::null: return "null";
  default: return j.dump();  // a number or a boolean: a scalar, no recursion
  }
}

std::string bounded_message(std::string_view msg, size_t max) {
  if (msg.size() <= max) return std::string(msg);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(msg[cut]) & 0xc0) == 0x80) --cut;  // not inside a UTF-8 sequence
  return std::string(msg.substr(0, cut)) + " ... (truncated)";
}

} // namespace berth::image
