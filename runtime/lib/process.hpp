// The container's init process: everything that runs between clone3 and the exec
// of the user's program (namespaces, rootfs, terminal, credentials, seccomp).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/fd.hpp"
#include "runtime/lib/spec.hpp"

namespace berth {

struct InitContext {
  const Spec* spec = nullptr;
  std::string id;
  int sync_fd = -1;            // child end of the sync socketpair
  int console_fd = -1;         // connected --console-socket, or -1
  bool relay_terminal = false; // send the pty master to the parent (run -t without a socket)
  int fifo_fd = -1;            // exec fifo, read side (create); -1 for run
  int state_dir_fd = -1;       // O_PATH fd of the state dir, for start.error
  int dmz_fd = -1;             // sealed berth-dmz, or -1
  int preserve_fds = 0;
  std::string cgroup_path;     // the container's cgroup on the host, "" without one
  bool no_pivot = false;
  bool no_new_keyring = false;
  // Existing namespaces to join, opened by the parent: (CLONE_NEW* flag, fd).
  std::vector<std::pair<int, int>> joins;
  unsigned long new_flags = 0; // namespaces to create
  // Idmapped mount trees made by the parent: (index in spec->mounts, fd).
  std::vector<std::pair<size_t, UniqueFd>> idmap_trees;
  bool flags_in_clone = false; // new namespaces were created by clone3 itself
};

// Decides whether clone3 can create every namespace directly (the fast path) or the
// child must join/unshare first and fork the init (joining a user or pid namespace,
// a new user namespace together with joined ones, time offsets).
bool namespaces_need_intermediate(const Spec& spec);

// Whether the cloned child forks the init (and reports its pid with sync::Msg::init_pid):
// it joined a pid namespace, or unshared a pid or time namespace, which only its
// children enter.
bool init_is_forked(const InitContext& c);

// Whether a created init waits for `start` in berth-dmz: it reports "created" before it
// drops privileges, and its sync socket closes when it execs berth-dmz. Otherwise it
// reports "created" once everything that can fail is done and waits in berth.
bool init_waits_in_dmz(const InitContext& c);

// Entry point of the cloned child. Never returns: execs the user's program or
// reports an error to the parent over the sync socket and exits.
[[noreturn]] void container_init(InitContext& ctx);

// What the init and `berth exec` share once they are in the process's cwd: the cwd must
// lie inside the container's root (CVE-2024-21626), HOME comes from /etc/passwd, args[0]
// is resolved on the process's PATH, then oom_score_adj and rlimits are applied.
struct PreparedProcess {
  std::vector<std::string> env; // the final environment
  std::string exe;              // args[0] resolved
};
PreparedProcess prepare_process(const ProcessSpec& p);

// Resolves args[0] like runc: a path with '/' is used as is, a bare name is looked up
// in the PATH of the process environment. Errors use runc's wording.
std::string resolve_executable(const std::string& arg0, const std::vector<std::string>& env);

} // namespace berth
