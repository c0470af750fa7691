// Private helpers of the rootfs module (rootfs.cpp, mounts.cpp, mount_ops.cpp,
// devices.cpp): safe path resolution inside the rootfs and thin wrappers over
// the mount API, each with a fallback for kernels that lack the newer calls.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.hpp"
#include "runtime/lib/rootfs.hpp"

namespace berth::mnt {

// Which newer kernel APIs to use. They are switched off when the kernel answers
// ENOSYS; tests switch them off to exercise the fallbacks.
struct KernelApis {
  bool openat2 = true;   // Linux 5.6
  bool new_mount = true; // open_tree/move_mount/fsopen/fsmount (5.2), mount_setattr (5.12)
};
KernelApis& kernel_apis();

// "/proc/self/fd/N", formatted without allocating.
class ProcFdPath {
public:
  explicit ProcFdPath(int fd);
  const char* c_str() const { return buf_; }

private:
  char buf_[32];
};

// Lexically cleaned absolute path: "a//b/../c/" -> "/a/c"; ".." never climbs above "/".
std::string clean_path(std::string_view path);

enum class Create {
  no,          // every component must exist
  directory,   // missing components become directories
  file,        // missing parents become directories, a missing last component an empty file
  like_source, // as `file` if `source_fd` is not a directory, else as `directory`
};

struct Resolved {
  UniqueFd fd;         // O_PATH
  bool existed = true; // false when the last component was created
};

// Opens `path` inside the tree rooted at `root_fd` as if `root_fd` were "/":
// "..", absolute symlinks and symlinks that climb out all stay inside. Uses
// openat2(RESOLVE_IN_ROOT) and falls back to a component-by-component walk that
// also creates what is missing. `nofollow_dir` requires the last component to be
// a real directory (procfs and sysfs must not be mounted through a symlink).
Resolved open_in_root(int root_fd, std::string_view path, Create create, int source_fd = -1,
                      bool nofollow_dir = false);

// Per-mount flags as mount_setattr(2) attributes.
struct MountAttrs {
  uint64_t set = 0, clr = 0;
  bool empty() const { return set == 0 && clr == 0; }
};
MountAttrs attrs_from_ms(unsigned long set, unsigned long clear);

// Bind-mounts the host path `source` onto `target_fd`.
void bind_onto(const char* source, int target_fd, bool recursive);
// A new, detached mount of a filesystem (fsopen/fsconfig/fsmount): `flags` give
// the superblock flags (sync, dirsync...), `data` the fs options, `attrs` the
// MOUNT_ATTR_* of the mount. Fails with ENOSYS on kernels without the API.
UniqueFd make_filesystem(std::string_view type, const std::string& source, unsigned long flags,
                         const std::string& data, uint64_t attrs);
// Sets the propagation (MS_SHARED... | MS_REC) of the mount whose root `mount_fd` is.
void apply_propagation(int mount_fd, unsigned long propagation);

// State shared by all the mounts of one container.
struct MountContext {
  int root_fd;
  const RootfsConfig& cfg;
  // User namespaces made for idmapped mounts, reused across mounts with the same mappings.
  std::vector<std::pair<std::string, UniqueFd>> userns_cache;
  bool shared_seen = false; // some mount was made shared: propagation can no longer be assumed
};

// Performs one entry of "mounts" (mount_ops.cpp).
void mount_entry(MountContext& ctx, const MountSpec& m);
// The `tmpfs` and `/dev` mounts that must become read-only once /dev is populated.
bool is_deferred_readonly(const MountSpec& m);

// Creates the device nodes and the /dev links (devices.cpp).
void setup_dev(int root_fd, const RootfsConfig& cfg);

// Copies the tree under `src_dir` (an open directory) into `dst_dir`, keeping
// modes, owners, timestamps and extended attributes where the target allows.
void copy_tree(int src_dir, int dst_dir);

} // namespace berth::mnt
