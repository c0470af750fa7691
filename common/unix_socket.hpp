// Unix-socket helpers shared by the runtime and the shim: connecting by path and
// passing one fd with SCM_RIGHTS (the console socket, the sync socket).
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "common/fd.hpp"

namespace berth {

// Connects to a unix socket of `type` (SOCK_STREAM, SOCK_SEQPACKET) at path; paths
// longer than sun_path go through /proc/self/fd.
UniqueFd connect_unix(const std::string& path, int type = SOCK_STREAM);
// Sends one fd with SCM_RIGHTS and payload (runc sends the pty name as payload).
// An empty payload travels as one NUL byte, which recv_fd turns back into "".
void send_fd(int sock, int fd, std::string_view payload);
// Receives one fd; payload (if non-null) receives the data bytes.
UniqueFd recv_fd(int sock, std::string* payload = nullptr);

} // namespace berth
