// The container's file system: root, mounts, /dev, pivot_root, masked and
// read-only paths. Everything here runs in the container's mount namespace, in
// the init process, before the user process is executed.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth {

struct IdMapping {
  uint32_t container_id, host_id, size;
};

struct MountSpec {
  std::string destination; // absolute, inside the container
  std::string type;        // "bind" for bind mounts (also set when options contain bind/rbind)
  std::string source;      // absolute host path for binds (relative ones resolved against the bundle)
  unsigned long flags = 0;       // MS_* flags to set
  unsigned long clear_flags = 0; // MS_* flags to clear ("rw", "suid", ...)
  unsigned long propagation = 0; // MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC)
  bool recursive = false;        // rbind, or r-prefixed attributes (rro, rnosuid...)
  bool tmpcopyup = false;
  std::string data;              // fs options passed as data ("mode=755,size=65536k")
  std::vector<IdMapping> uid_mappings, gid_mappings; // idmapped mount
};

struct DeviceSpec {
  std::string path; // absolute in the container
  char type;        // 'c', 'b', 'u', 'p'
  int64_t major = 0, minor = 0;
  std::optional<uint32_t> file_mode;
  std::optional<uint32_t> uid, gid;
};

// Parses the top-level "mounts" array; `bundle` resolves relative bind sources.
std::vector<MountSpec> parse_mounts(const JsonView& mounts, const std::string& bundle);
// Parses linux.devices.
std::vector<DeviceSpec> parse_devices(const JsonView& devices);

struct RootfsConfig {
  std::string rootfs;         // absolute host path
  bool readonly = false;      // root.readonly
  unsigned long rootfs_propagation = 0; // linux.rootfsPropagation, 0 = default (rslave... as runc: MS_SLAVE|MS_REC)
  std::vector<MountSpec> mounts;
  std::vector<DeviceSpec> devices;
  std::vector<std::string> masked_paths, readonly_paths;
  bool user_namespace = false; // container has its own user ns: bind devices instead of mknod
  bool no_pivot = false;
  std::string mount_label;
};

// Before pivot_root: sets the propagation of /, makes the rootfs a mount point,
// performs every mount (destinations resolved inside the rootfs with no symlink
// escape), creates /dev nodes and links.
void prepare_rootfs(const RootfsConfig& cfg);
// pivot_root into the rootfs (or MS_MOVE + chroot with no_pivot) and detach the old root.
void enter_rootfs(const RootfsConfig& cfg);
// After pivot_root: masked paths, read-only paths, read-only root.
void finalize_rootfs(const RootfsConfig& cfg);

// Flag tables, shared with `berth features`.
std::vector<std::string> known_mount_options();

} // namespace berth
