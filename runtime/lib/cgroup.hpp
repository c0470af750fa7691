// The container's cgroup on the host's cgroup v2 hierarchy (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/json.hpp"

namespace berth {

// Mount point of the cgroup2 hierarchy, or "" when the host has none.
const std::string& cgroup2_root();

class Cgroup {
public:
  // Resolves cgroupsPath (absolute: under the hierarchy root; relative: under the
  // runtime's own cgroup; empty: <own cgroup>/<id>) and creates it. The directory is
  // removed again by the destructor unless commit() was called.
  static Cgroup create(const std::string& cgroups_path, const std::string& id);
  Cgroup() = default;
  Cgroup(Cgroup&&) noexcept = default;
  Cgroup& operator=(Cgroup&&) noexcept = default;
  ~Cgroup();

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  int dir_fd() const { return fd_.get(); } // for clone3(CLONE_INTO_CGROUP)
  void add_process(pid_t pid) const;
  void commit() { committed_ = true; }

private:
  std::string path_;
  UniqueFd fd_;
  bool created_ = false;
  bool committed_ = false;
};

// Kills whatever is left in the cgroup and removes it. Missing cgroups are fine.
void cgroup_destroy(const std::string& path);
std::vector<pid_t> cgroup_pids(const std::string& path);
bool cgroup_frozen(const std::string& path);

// linux.resources is applied by the cgroup layer; every limit that cannot be applied
// on this host is reported as a warning, never dropped silently.
void apply_resources(const std::string& path, const json& resources);

} // namespace berth
