// systemd's readiness protocol for Type=notify services: one datagram of
// "KEY=VALUE\n..." lines to the unix socket named by $NOTIFY_SOCKET (a path, or
// "@name" for the abstract namespace). sd_notify(3) documents the protocol as stable
// for independent implementations; doing it here spares a daemon loading libsystemd
// and its dependencies (about 0.7 MiB of resident pages).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace berth {

// Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID once and removes them from the
// environment (sd_notify(3)'s unset_environment), so that no child (a shim, a runtime, a
// container, which would relay its own READY=1 to it) talks to systemd as this service.
// A daemon calls it first thing in main, before any thread exists.
void claim_systemd_notify_environment();

// Sends `state` (e.g. "READY=1\nSTATUS=serving") when $NOTIFY_SOCKET is set. Returns
// false when there is nobody to notify or the datagram could not be sent: readiness
// notification is best effort, as with sd_notify.
bool notify_systemd(std::string_view state);

// The service watchdog (WatchdogSec=): how often to send "WATCHDOG=1", i.e. half of
// $WATCHDOG_USEC as sd_watchdog_enabled(3) advises; nothing when it is not set or
// $WATCHDOG_PID names another process.
std::optional<std::chrono::milliseconds> watchdog_ping_interval();

} // namespace berth
