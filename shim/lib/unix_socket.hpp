// Unix sockets of the shim: listeners in the state dir, the console socket's fd
// passing, and the framed SOCK_SEQPACKET messages of the attach protocol.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/unix_socket.hpp" // connect_unix, and recv_fd for the console socket

namespace berth::shim {

// Binds and listens at path (type SOCK_STREAM or SOCK_SEQPACKET), non-blocking,
// close-on-exec, mode 0600. An existing file at path is replaced.
UniqueFd listen_unix(const std::string& path, int type);
// Accepts one connection, non-blocking and close-on-exec; an empty fd when none waits.
UniqueFd accept_connection(int listener);

// Attach protocol frame: one type byte, then the payload, in one SOCK_SEQPACKET message.
// Returns false when the peer cannot take it now (EAGAIN) or is gone.
bool send_frame(int sock, char type, std::string_view payload, bool blocking = false);

} // namespace berth::shim
