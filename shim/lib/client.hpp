// The client side of the shim's sockets, for shells and scripts: `berth-shim state`,
// `wait`, `reopen-log`, `resize`, `close-stdin`, `attach`, `exec`.
#pragma once

#include "shim/lib/options.hpp"

namespace berth::shim {

// Returns the process exit code (wait/exec: the container's or process's code).
int run_client(const ClientOptions& opts);

} // namespace berth::shim
