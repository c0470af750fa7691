// A container's on-disk state: <root>/<id>/state.json (+ exec.fifo while created).
//
// state.json is replaced atomically; a flock on the container directory serialises
// commands that change the container (start, kill, delete) so they are safe to run
// concurrently.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>

#include "common/fd.hpp"
#include "common/json.hpp"

namespace berth {

enum class Status { creating, created, running, paused, stopped };
const char* status_name(Status s);

struct ContainerState {
  std::string id;
  pid_t pid = 0;
  unsigned long long pid_start_time = 0; // /proc/<pid>/stat field 22, guards against pid reuse
  std::string bundle;
  std::string rootfs;
  std::string created; // RFC 3339
  std::string owner;
  std::string cgroup_path; // absolute path of the container's cgroup, empty if none
  bool systemd_cgroup = false;
  std::map<std::string, std::string> annotations;
  std::string oci_version;
  json config; // config.json as it was at create time (hooks, namespaces for later commands)

  json to_json() const;
  static ContainerState from_json(const json& j);
};

// The OCI state object (`berth state`, hook stdin): ociVersion id status pid bundle
// (plus rootfs created owner annotations as runc prints them).
nlohmann::ordered_json oci_state(const ContainerState& s, Status status);

// Validates a container id: [A-Za-z0-9_+.-]+, not "." or "..".
void validate_container_id(const std::string& id);

class StateDir {
public:
  // Creates <root>/<id> (exclusive). Fails with `container with id exists: <id>`.
  static StateDir create(const std::string& root, const std::string& id);
  // Opens an existing container dir. Commands that change the container (start,
  // delete) take the exclusive lock; readers take none, since state.json is replaced
  // atomically. Fails with `container does not exist` (runc's text).
  enum class Lock { none, exclusive };
  static StateDir open(const std::string& root, const std::string& id, Lock lock);
  static std::optional<StateDir> try_open(const std::string& root, const std::string& id, Lock lock);
  void lock();
  void unlock();

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  std::string fifo_path() const { return path_ + "/exec.fifo"; }

  ContainerState load() const;
  void save(const ContainerState& s) const;
  // Removes the directory and everything in it.
  void remove();

  // Dismisses the RAII cleanup of a freshly created dir.
  void commit() { committed_ = true; }
  StateDir(StateDir&&) noexcept;
  StateDir& operator=(StateDir&&) = delete;
  ~StateDir();

private:
  StateDir(std::string path, UniqueFd fd, bool fresh) : path_(std::move(path)), fd_(std::move(fd)), fresh_(fresh) {}
  std::string path_;
  UniqueFd fd_;
  bool fresh_ = false;
  bool committed_ = false;
};

// Reads /proc/<pid>/stat: start time, and whether the process is a zombie.
struct ProcStat {
  unsigned long long start_time = 0;
  char state = 0;
  unsigned long flags = 0; // PF_* (PF_EXITING 0x4: the process is in exit)
};
std::optional<ProcStat> read_proc_stat(pid_t pid);

// The container's status from its state and the live system.
Status current_status(const StateDir& dir, const ContainerState& s);
// True while the container's init process (the one recorded in state) is alive.
bool init_alive(const ContainerState& s);

// Default --root: /run/berth, or $XDG_RUNTIME_DIR/berth when not root.
std::string default_state_root();

} // namespace berth
