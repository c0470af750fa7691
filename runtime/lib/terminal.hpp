// Pseudo-terminals, the console socket, and fd passing over unix sockets.
#pragma once

#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/unix_socket.hpp" // connect_unix, send_fd, recv_fd

namespace berth {

struct PtyPair {
  UniqueFd master, slave;
};

// Opens a new pty from /dev/ptmx (which, inside the container, is the container's own
// devpts instance) and its slave.
PtyPair open_pty();
void set_window_size(int fd, unsigned rows, unsigned cols);
// Makes fd the controlling terminal and stdin/stdout/stderr of the caller (after setsid).
void make_controlling_terminal(int slave);

// `berth run` with a terminal and no --console-socket: relays between our stdin/stdout
// and the pty master (stdin in raw mode when it is a tty, SIGWINCH forwarded) until
// the master reports hang-up. Restores the terminal before returning. The caller must
// have closed its own copies of the slave, or the hang-up never comes.
void relay_pty(int master);

} // namespace berth
