// A container's root file system: the snapshotter's mounts assembled at the bundle's
// rootfs directory in berthd's mount namespace, and directories made inside it
// without ever following a symlink out of it.
#pragma once

#include <string>
#include <vector>

#include "cri/image/snapshotter.hpp"

namespace berth::cri {

// Mounts the snapshot (an overlay, or a bind for a single-layer or empty image) at
// target (which must exist). Errors name the target and the mount type.
void mount_rootfs(const std::vector<image::Mount>& mounts, const std::string& target);
// Unmounts whatever is mounted at target (MNT_DETACH); nothing mounted is fine.
void unmount_rootfs(const std::string& target);
bool is_mount_point(const std::string& path);
// mkdir -p of an absolute path inside rootfs, every component resolved with
// openat2(RESOLVE_IN_ROOT): image volumes and mount targets of the image.
void make_dirs_in_root(const std::string& rootfs, const std::string& path, mode_t mode = 0755);

} // namespace berth::cri
