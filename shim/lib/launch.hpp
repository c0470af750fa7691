// Starting a shim: checks that fail fast (before anything is detached), the state
// dir, detaching from the caller, and the report back to it.
#pragma once

#include "shim/lib/options.hpp"

namespace berth::shim {

// `berth-shim run`: returns the caller's exit code (0: the container exists and the
// shim serves it; its pid was printed as {"pid":N,"shim_pid":M}).
int run_shim(const ShimOptions& opts);

} // namespace berth::shim
