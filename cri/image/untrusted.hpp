// Input from a registry (and from a CRI client) is hostile: these helpers bound what the
// library does with it. JSON is checked for nesting depth before it is parsed (nlohmann's
// parser is iterative, but copying, comparing and dumping a document recurse), and error
// messages quote at most a bounded excerpt of any untrusted text, never a whole value.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/json.hpp"

namespace berth::image {

// Deepest nesting accepted in a JSON document from a registry (manifest, index, config,
// token answer): OCI documents need 4. The same limit as the container side's image
// config parser (cri/pod), so an image that pulls can be run. (Go's encoding/json, in
// containerd, stops at 10000.)
inline constexpr size_t kMaxJsonDepth = 32;

// common/json.hpp's, with the registry's depth limit as the default.
using berth::json_depth;
inline nlohmann::json parse_untrusted_json(std::string_view text, std::string_view what,
                                           size_t max_depth = kMaxJsonDepth) {
  return berth::parse_untrusted_json(text, what, max_depth);
}
inline nlohmann::ordered_json parse_untrusted_ordered_json(std::string_view text, std::string_view what,
                                                           size_t max_depth = kMaxJsonDepth) {
  return berth::parse_untrusted_ordered_json(text, what, max_depth);
}

// A quoted excerpt for messages: common's quoted_value() (at most `max` bytes, control
// and non-ASCII bytes escaped, "..." when cut) followed by " (N bytes)" when it was cut.
std::string excerpt(std::string_view s, size_t max = 128);

// What a JSON value is, for messages: a string as excerpt(), a number or boolean as
// written, an array or object by type and size only (never dumped: that recurses).
std::string describe_json(const nlohmann::json& j);

// A message cut to at most `max` bytes (on a UTF-8 boundary) with " ... (truncated)".
std::string bounded_message(std::string_view msg, size_t max);

} // namespace berth::image
