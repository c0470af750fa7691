// Kubernetes resource quantities ("100m", "0.5", "128Mi", "1G", "2e3") as the API
// server parses them: cpu in millicores, memory in bytes.
#pragma once

#include <cstdint>
#include <string_view>

namespace berth::agent {

// Value times 1000, rounded up (as resource.Quantity.MilliValue does). Throws berth::Error.
int64_t parse_quantity_milli(std::string_view text);
// Whole value rounded up (as resource.Quantity.Value does). Throws berth::Error.
int64_t parse_quantity(std::string_view text);

} // namespace berth::agent
