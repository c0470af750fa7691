// systemd's readiness protocol for Type=notify services: one datagram of
// "KEY=VALUE\n..." lines to the unix socket named by $NOTIFY_SOCKET (a path, or
// "@name" for the abstract namespace). sd_notify(3) documents the protocol as stable
// for independent implementations; doing it here spares a daemon loading libsystemd
// and its dependencies (about 0.7 MiB of resident pages).
#pragma once

#include <string_view>

namespace berth {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") when $NOTIFY_SOCKET is set. Returns
// false when there is nobody to notify or the datagram could not be sent: readiness
// notification is best effort, as with sd_notify.
bool notify_systemd(std::string_view state);

} // namespace berth
