// `berth spec`: the default config.json, as `runc spec` writes it.
#pragma once

#include <nlohmann/json.hpp>

namespace berth {

// The default configuration; rootless adapts it for an unprivileged user (a user
// namespace mapping the caller, no network namespace, /sys bound from the host).
nlohmann::ordered_json default_spec(bool rootless);

} // namespace berth
