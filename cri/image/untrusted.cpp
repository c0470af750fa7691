#include "cri/image/untrusted.hpp"

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::image {

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
