#include "cri/pod/rootfs.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cstring>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"

namespace berth::cri {

void mount_rootfs(const std::vector<image::Mount>& mounts, const std::string& target) {
  if (mounts.size() != 1) fail("mount rootfs {}: expected one mount, the snapshotter gave {}", target, mounts.size());
  const image::Mount& m = mounts[0];
  if (m.type == "bind") {
    bool ro = false;
    for (auto& o : m.options) ro |= o == "ro";
    if (::mount(m.source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
      fail_errno("bind {} on {}", m.source, target);
    if (ro && ::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) < 0) {
      int err = errno;
      ::umount2(target.c_str(), MNT_DETACH);
      fail_code(err, "remount {} read-only", target);
    }
    return;
  }
  if (m.type != "overlay") fail("mount rootfs {}: unsupported mount type \"{}\"", target, m.type);
  std::string data;
  for (auto& o : m.options) data += (data.empty() ? "" : ",") + o;
  // mount(2) takes one page of options: deep images need the new mount API's
  // per-option fsconfig, which berthd does not use yet.
  if (data.size() >= 4096) fail_code(E2BIG, "mount overlay on {}: the layer list is {} bytes (more than a page)", target, data.size());
  if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) < 0) {
    // The kernel's EINVAL is a refusal of the layers (an upper dir on overlayfs or on a
    // filesystem without d_type, say), not a bad request: its text stays in the message.
    int err = errno;
    if (err == EINVAL)
      fail_code(EIO, "mount overlay on {}: {} (is the snapshot directory on a filesystem overlayfs accepts as its "
                "upper layer? not overlayfs, not a filesystem without d_type)", target, std::strerror(err));
    fail_code(err, "mount overlay on {}", target);
  }
}

bool is_mount_point(const std::string& path) {
  struct statx a {}, b {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &a) < 0) return false;
  if (a.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) return (a.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  std::string parent = path.substr(0, path.rfind('/'));
  if (::statx(AT_FDCWD, parent.empty() ? "/" : parent.c_str(), 0, STATX_BASIC_STATS, &b) < 0) return false;
  return a.stx_dev_major != b.stx_dev_major || a.stx_dev_minor != b.stx_dev_minor;
}

void unmount_rootfs(const std::string& target) {
  for (int i = 0; i < 8 && is_mount_point(target); ++i)
    if (::umount2(target.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
      fail_errno("unmount {}", target);
}

void make_dirs_in_root(const std::string& rootfs, const std::string& path, mode_t mode) {
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) fail_errno("open {}", rootfs);
  std::string prefix;
  for (auto& part : split(path, '/')) {
    if (part == "." || part == "..") fail_code(EINVAL, "path {}: \"{}\" components are not allowed", path, part);
    UniqueFd parent = prefix.empty() ? UniqueFd(::dup(root.get()))
                                     : image::open_in_root(root.get(), prefix, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!parent) fail_errno("open {} in {}", prefix, rootfs);
    if (::mkdirat(parent.get(), part.c_str(), mode) < 0 && errno != EEXIST)
      fail_errno("mkdir {}/{} in {}", prefix, part, rootfs);
    prefix += "/" + part;
  }
  // The last component must be a directory (it may be a symlink to one inside the root).
  if (!image::open_in_root(root.get(), prefix.empty() ? "/" : prefix, O_PATH | O_DIRECTORY | O_CLOEXEC))
    fail_errno("{} in {} is not a directory", path, rootfs);
}

} // namespace berth::cri
