// Standard base64 (RFC 4648 section 4, padded): CNI's cached configs, registry auth.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace berth {

std::string base64_encode(std::string_view in);
// Strict: nullopt for a character outside the alphabet, data after padding or a
// length that is not a multiple of 4.
std::optional<std::string> base64_decode(std::string_view in);

} // namespace berth
