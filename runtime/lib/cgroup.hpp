// The container's cgroup on the host's cgroup v2 hierarchy (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host): placement (cgroupfs or a systemd scope),
// linux.resources, live updates, pause/resume, kill, OOM counts and statistics.
//
// A limit the host cannot enforce (its controller is not offered, its file does not
// exist, the container has no cgroup) fails create, naming the controllers and the host's
// cgroup mode, unless the caller accepted unenforced limits (--allow-unenforced-limits,
// BERTH_ALLOW_UNENFORCED_LIMITS=1): then each is a warning. Fields cgroup v2 cannot
// express at all (kernel memory, swappiness...) are warnings. Bad values are config errors.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/json.hpp"

namespace berth {

// Whether berth runs in a user namespace other than the initial one.
bool in_user_namespace();

// Mount point of the cgroup2 hierarchy, or "" when the host has none.
const std::string& cgroup2_root();

// runc's cgroupfs placement, relative to the hierarchy root: an absolute cgroupsPath as
// is, a relative one (or <id> when empty) under the parent of `own_cgroup` (the
// runtime's own cgroup usually has processes, so controllers cannot be enabled below
// it). ".." is resolved lexically and cannot climb above the root.
std::string cgroup_resolve_path(const std::string& cgroups_path, const std::string& id,
                                const std::string& own_cgroup);

class Cgroup {
public:
  // cgroupfs driver: creates the cgroup (and its missing parents) and enables the
  // accounting controllers (cpu, io, memory, pids) in every ancestor's
  // cgroup.subtree_control, as far as each ancestor offers them (apply_resources enables
  // the others a config needs). The directory is removed again by the destructor unless
  // commit() was called.
  static Cgroup create(const std::string& cgroups_path, const std::string& id);
  // systemd driver (--systemd-cgroup): a transient scope for cgroupsPath
  // "slice:prefix:name", started around a placeholder process of berth-systemd that
  // keeps the scope alive until the init is in it (release_placeholder()); the limits
  // systemd knows are unit properties. The destructor stops the scope unless committed.
  static Cgroup create_systemd(const std::string& cgroups_path, const std::string& id, const json& resources);

  Cgroup();
  Cgroup(Cgroup&& other) noexcept;
  Cgroup& operator=(Cgroup&& other) noexcept;
  ~Cgroup();

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  int dir_fd() const { return fd_.get(); } // for clone3(CLONE_INTO_CGROUP)
  const std::string& systemd_unit() const { return unit_; } // "" for cgroupfs
  void add_process(pid_t pid) const;
  // Call once the container's init is in the cgroup: the systemd scope's placeholder
  // leaves (no-op for cgroupfs). commit() and the destructor do it too.
  void release_placeholder();
  void commit();

private:
  void reset() noexcept;
  std::string path_;
  UniqueFd fd_;
  bool created_ = false;
  bool committed_ = false;
  std::string unit_;
  pid_t holder_pid_ = -1;  // berth-systemd --hold, inside the scope
  UniqueFd holder_stdin_;  // EOF also ends the holder, should berth die first
};

// Kills whatever is left in the cgroup and removes it; with `systemd_scope` the scope
// unit (the cgroup's last path component) is stopped too. Missing cgroups are fine.
void cgroup_destroy(const std::string& path, bool systemd_scope = false);
// Every process in the cgroup and its descendants.
std::vector<pid_t> cgroup_pids(const std::string& path);
bool cgroup_frozen(const std::string& path);
// Freezes or thaws, and waits (10 s at most) until cgroup.events says it happened.
void cgroup_freeze(const std::string& path, bool frozen);
// SIGKILLs every process of the cgroup through cgroup.kill (Linux 5.14+); false when the
// kernel has no cgroup.kill (the caller signals the processes itself).
bool cgroup_kill(const std::string& path);
// memory.events oom_kill: processes the OOM killer killed in this cgroup (0 if unknown).
uint64_t cgroup_oom_kills(const std::string& path);
// runc's `events --stats` "data" object (cpu, cpuset, memory, pids, blkio, hugetlb,
// intel_rdt, network_interfaces), from the cgroup v2 files.
json cgroup_stats(const std::string& path);

// The host's cgroup mode for messages: "unified", "hybrid" or "legacy", with where cgroup
// v2 is mounted.
std::string cgroup_mode_description();

// What create does with limits the host cannot enforce.
struct LimitsPolicy {
  bool allow_unenforced = false; // warn and run without them (else fail create)
  std::string no_cgroup_reason;  // why the container has no cgroup, when path is ""
};

// Applies linux.resources to a new, empty cgroup: before the init is cloned into it.
// Devices: the BPF filter is attached even when resources has no devices (runc's
// default allow-list then applies). `path` "" (no cgroup): no limit can be enforced.
void apply_resources(const std::string& path, const json& resources, const LimitsPolicy& policy = {});
// Checks linux.resources without touching anything (for config parsing).
void validate_resources(const json& resources);
// runc update on a live cgroup: absent fields stay as they are, memory/swap and cpu
// quota/period are merged with the current values, checkBeforeUpdate refuses a limit
// at or below the current usage. Unlike create, a limit that cannot be set is an error.
// With `systemd_unit` (systemd driver) the unit's properties are set first, with the
// merged values, so that systemd does not undo the update later.
void update_resources(const std::string& path, const json& resources, const std::string& systemd_unit = "");
// runc update's flags (keys without the leading dashes: "memory", "cpu-quota", ...) →
// LinuxResources JSON holding only what was given; sizes accept "64m", "1g", "-1".
json resources_from_update_flags(const std::map<std::string, std::string>& flags);

// ---- systemd driver (through the berth-systemd helper) -------------------------------

// Whether --systemd-cgroup can work here: systemd runs and the helper is installed.
bool systemd_driver_available();
// Starts the transient scope for cgroupsPath "slice:prefix:name" (empty: system.slice,
// berth-<id>.scope) with `pid` in it; returns the absolute cgroup path.
std::string systemd_create_scope(const std::string& cgroups_path, const std::string& id, pid_t pid,
                                 const json& resources);
// Stops the unit and waits for it; a unit that is already gone is fine.
void systemd_stop_scope(const std::string& unit);
// Sets the unit properties systemd knows for `resources` (SetUnitProperties, runtime).
void systemd_set_properties(const std::string& unit, const json& resources);

} // namespace berth
