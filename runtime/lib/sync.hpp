// The message protocol between `berth create/run` (parent) and the container's
// init process over a SOCK_SEQPACKET socketpair. One message per packet.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/fd.hpp"

namespace berth::sync {

enum class Msg : uint32_t {
  error = 1,       // child -> parent: errno + message; the child exits after sending it
  need_idmap,      // child -> parent: write uid/gid maps for the sending process (payload: pid)
  idmap_done,      // parent -> child
  init_pid,        // intermediate child -> parent: host pid of the init process (payload)
  mounts_done,     // child -> parent: rootfs mounted, run prestart/createRuntime hooks
  hooks_done,      // parent -> child: payload is the state JSON for container-side hooks
  created,         // child -> parent: waiting for start
  start,           // parent -> child (run): execute the user process now
  pty_master,      // child -> parent: pty master fd attached (run with a terminal and no socket)
};

struct Message {
  Msg type{};
  int32_t err = 0;
  std::string payload;
};

void send(int fd, Msg type, const std::string& payload = {}, int32_t err = 0);
// Receives one message; throws on EOF with `what` naming the step that was awaited.
Message recv(int fd, const char* what);
// Like recv but returns false on orderly EOF (the peer closed or exec'd).
bool try_recv(int fd, Message& out);
// Receives a message expected to be `type`; an error message from the child is rethrown
// as berth::Error with its errno and text.
Message expect(int fd, Msg type, const char* what);

} // namespace berth::sync
