// NOTIFY_SOCKET, as runc's notify_socket.go does it: when systemd (Type=notify) or
// podman (--sdnotify=container, Quadlet Notify=) runs the runtime with $NOTIFY_SOCKET,
// the container gets a notify socket of its own, bind-mounted read-only at
// /run/notify/notify.sock and named in its environment, and the runtime relays the
// container's READY= to the host's socket together with MAINPID and a BARRIER=1.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/fd.hpp"
#include "runtime/lib/spec.hpp"

namespace berth::notify {

inline constexpr const char* kContainerDir = "/run/notify";
inline constexpr const char* kContainerSocket = "/run/notify/notify.sock";

// $NOTIFY_SOCKET of berth's own environment (a path, or "@name" for the abstract
// namespace); "" when unset or not a socket address.
std::string host_socket();

// create/run: makes <state dir>/notify, and adds to the spec the read-only bind mount of
// it at /run/notify and NOTIFY_SOCKET=/run/notify/notify.sock in the process's env.
void setup_container(Spec& spec, int state_dir_fd, const std::string& state_dir);

// Binds <state dir>/notify/notify.sock (mode 0777: the container's user may be anyone):
// by `start`, or by `run` before it starts the process. An empty fd when the container
// was created without a notify directory (no $NOTIFY_SOCKET at create).
UniqueFd bind_container_socket(int state_dir_fd);

// Waits for a datagram with a READY= line on `sock`, then sends that line,
// MAINPID=<main_pid> and BARRIER=1 (waiting at most 30 s for the barrier) to `host`.
// Returns without notifying when the process behind `pidfd` exits first.
void relay_ready(int sock, const std::string& host, int pidfd, pid_t main_pid);

} // namespace berth::notify
