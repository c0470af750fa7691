// Pseudo-terminals, the console socket, and fd passing over unix sockets.
#pragma once

#include <string>
#include <string_view>

#include "common/fd.hpp"

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

// Connects to a unix stream socket at path (paths longer than sun_path go through /proc/self/fd).
UniqueFd connect_unix(const std::string& path);
// Sends one fd with SCM_RIGHTS and payload (runc sends the pty name as payload).
// An empty payload travels as one NUL byte, which recv_fd turns back into "".
void send_fd(int sock, int fd, std::string_view payload);
// Receives one fd; payload (if non-null) receives the data bytes.
UniqueFd recv_fd(int sock, std::string* payload = nullptr);

// `berth run` with a terminal and no --console-socket: relays between our stdin/stdout
// and the pty master (stdin in raw mode when it is a tty, SIGWINCH forwarded) until
// the master reports hang-up. Restores the terminal before returning. The caller must
// have closed its own copies of the slave, or the hang-up never comes.
void relay_pty(int master);

} // namespace berth
