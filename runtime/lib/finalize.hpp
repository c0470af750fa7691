// The last steps before the container's process runs, shared by the init process
// and `berth exec`: LSM labels, personality and scheduling, capabilities, uid/gid,
// no_new_privs, seccomp, signals, fds, and the exec through berth-dmz.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/lib/spec.hpp"

namespace berth {

struct FinalizeArgs {
  const ProcessSpec* process = nullptr;
  std::vector<std::string> env; // the final environment (HOME filled in)
  std::string exe;              // args[0] resolved
  const seccomp::Profile* seccomp = nullptr;
  const Personality* personality = nullptr;
  bool user_namespace = false;
  int dmz_fd = -1;       // sealed berth-dmz, -1 to exec directly
  int preserve_fds = 0;
  int wait_fd = -1;      // berth-dmz waits for a byte here first (the exec fifo)
  int listener_fd = -1;  // connected seccomp listener socket, -1 if none
  std::string listener_state;          // state JSON sent with the notify fd
  std::string listener_metadata;
  // Runs once fds are sealed, before privileges are dropped and seccomp is loaded: the
  // init that waits for start in berth-dmz reports "created" here (the parent then reads
  // on until the exec closes the sync socket, so later errors still reach `create`).
  std::function<void()> before_privileges_drop;
  // Runs once every step that can fail is done (credentials, capabilities,
  // no_new_privs), before seccomp is loaded under no_new_privs and the exec: the init
  // that waits for start in berth reports "created", waits, and runs startContainer
  // hooks here, as runc does.
  std::function<void()> ready;
};

// Never returns on success; throws berth::Error when a step fails.
[[noreturn]] void finalize_and_exec(FinalizeArgs& a);

// The fields of uid's line in /etc/passwd (name, password, uid, gid, gecos, home, shell),
// empty when there is none. Parsed directly: the static binary has no NSS.
std::vector<std::string> passwd_entry(uid_t uid);

// Adds HOME from the container's /etc/passwd when env has none (runc's behaviour).
void add_home(std::vector<std::string>& env, uid_t uid);

} // namespace berth
