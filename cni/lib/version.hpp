// CNI spec versions and conversion of results between them (libcni's
// types/{020,040,100} converters): 0.1.0/0.2.0 carry ip4/ip6 objects, 0.3.x/0.4.0
// carry ips[] with a "version" field, 1.x drops that field.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::cni {

using json = nlohmann::json;

// The newest version this client and berth-bridge speak.
inline constexpr std::string_view kLatestVersion = "1.1.0";

// Every version a result can be converted to and from.
const std::vector<std::string>& supported_versions();
bool is_supported_version(std::string_view v);

// Compares dotted versions numerically ("0.4.0" < "1.0.0"); fails on malformed input.
int compare_versions(std::string_view a, std::string_view b);
bool version_at_least(std::string_view v, std::string_view min);

// Converts a result object (its own "cniVersion" says what it is; absent means
// 0.1.0) to `to`. Fails when the target cannot hold it (e.g. two IPv4 addresses
// in a 0.2.0 result).
json convert_result(const json& result, std::string_view to);

} // namespace berth::cni
