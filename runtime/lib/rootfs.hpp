// The container's file system: root, mounts, /dev, pivot_root, masked and
// read-only paths. Everything here runs in the container's mount namespace, in
// the init process, before the user process is executed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/json.hpp"

namespace berth {

struct IdMapping {
  uint32_t container_id, host_id, size;
};

struct MountSpec {
  std::string destination;       // absolute and lexically clean, inside the container
  std::string type;              // "bind" for bind mounts (also set when options contain bind/rbind);
                                 // "cgroup" is mounted as the container's cgroup2 view
  std::string source;            // absolute host path for binds (relative ones resolved against the bundle)
  unsigned long flags = 0;       // MS_* flags to set (MS_RDONLY, MS_NOSUID, ..., MS_REMOUNT)
  unsigned long clear_flags = 0; // MS_* flags to clear ("rw", "suid", ...)
  unsigned long propagation = 0; // MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC); last one wins
  bool recursive = false;        // rbind: the whole subtree of the source
  uint64_t rec_attr_set = 0, rec_attr_clr = 0; // MOUNT_ATTR_* from rro, rnosuid, ...: every mount of the tree
  bool tmpcopyup = false;
  bool idmap = false;                                // idmap/ridmap option, or uidMappings given
  bool recursive_idmap = false;                      // ridmap
  std::string data;                                  // fs options passed as data ("mode=755,size=65536k")
  std::vector<IdMapping> uid_mappings, gid_mappings; // idmapped mount
  // A detached, already idmapped mount made by the runtime on the host side (a process
  // inside a user namespace may not idmap host file systems); -1 when none.
  int premade_tree = -1;

  bool is_bind() const { return type == "bind"; }
};

struct DeviceSpec {
  std::string path; // absolute in the container
  char type = 'c';  // 'c', 'b', 'u', 'p'
  int64_t major = 0, minor = 0;
  std::optional<uint32_t> file_mode;
  std::optional<uint32_t> uid, gid;
};

// Parses the top-level "mounts" array; `bundle` resolves relative bind sources.
std::vector<MountSpec> parse_mounts(const JsonView& mounts, const std::string& bundle);
// Parses linux.devices.
std::vector<DeviceSpec> parse_devices(const JsonView& devices);

struct RootfsConfig {
  std::string rootfs;    // absolute host path
  bool readonly = false; // root.readonly
  // linux.rootfsPropagation (MS_* | MS_REC); 0 = runc's default: / rslave, the rootfs mount private.
  unsigned long rootfs_propagation = 0;
  std::vector<MountSpec> mounts;
  std::vector<DeviceSpec> devices;
  std::vector<std::string> masked_paths, readonly_paths;
  bool user_namespace = false; // container has its own user ns: bind devices instead of mknod
  bool no_pivot = false;
  // false when the container shares the runtime's mount namespace (no "mount" in
  // linux.namespaces): mounts then land in that namespace and the root is entered with
  // chroot, as runc does; "/" keeps its propagation.
  bool mount_namespace = true;
  // The container's cgroup on the host (absolute path) and whether it has a cgroup
  // namespace: a cgroup2 mount is then a bind of that directory, the same view as a
  // fresh mount without the kernel's cost of one (milliseconds on some hosts).
  std::string cgroup_path;
  bool cgroup_namespace = false;
  std::string mount_label;
  // The container's own mappings, used by idmap mounts that carry none (as runc does).
  std::vector<IdMapping> uid_mappings, gid_mappings;
};

// Before pivot_root: sets the propagation of /, makes the rootfs a mount point,
// performs every mount (destinations resolved inside the rootfs with no symlink
// escape), creates /dev nodes and links. Runs in the container's new mount
// namespace, still seeing the host's / (bind sources and host devices).
void prepare_rootfs(const RootfsConfig& cfg);
// pivot_root into the rootfs (or MS_MOVE + chroot with no_pivot) and detach the old root.
void enter_rootfs(const RootfsConfig& cfg);
// After pivot_root: read-only tmpfs and /dev mounts, read-only paths, masked
// paths, read-only root. Call it after writing sysctls: /proc/sys is usually a
// read-only path.
void finalize_rootfs(const RootfsConfig& cfg);

// Host side, for containers with a user namespace: clones the bind source of an
// idmapped mount into a detached tree and idmaps it with the mount's own mappings, or
// with the container's user namespace (container_userns) when the mount has none.
UniqueFd make_idmapped_tree(const MountSpec& m, int container_userns);

// Flag tables, shared with `berth features`.
std::vector<std::string> known_mount_options();

} // namespace berth
