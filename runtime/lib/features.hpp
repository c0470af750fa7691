// `berth features`: what this build and host really support (OCI features document).
#pragma once

#include <nlohmann/json.hpp>

namespace berth {

nlohmann::ordered_json features_document();

} // namespace berth
