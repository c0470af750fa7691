// The berthd process: one instance per state directory (a lock file), the image
// store, the gRPC server on a unix socket, systemd readiness notification, and an
// orderly shutdown on SIGTERM/SIGINT.
#pragma once

#include "cri/server/config.hpp"

namespace berth::cri {

// Serves until SIGTERM or SIGINT; returns the process exit code. Start-up failures
// (lock held, store unusable, socket not bindable) throw berth::Error.
int run_daemon(const Config& cfg);

} // namespace berth::cri
