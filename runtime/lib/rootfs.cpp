// The container's root: preparing it from the host side, pivoting into it, and
// the final read-only and masking steps from inside.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/mount_util.hpp"
#include "runtime/lib/rootfs.hpp"

namespace berth {

namespace {

using mnt::kernel_apis;

// Modes given to mkdir/mknod are meant exactly (device nodes 0666).
class UmaskGuard {
public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;

private:
  mode_t old_;
};

void set_propagation(const char* path, unsigned long propagation) {
  if (::mount(nullptr, path, nullptr, propagation, nullptr) < 0)
    fail_errno("set the propagation of {}", path);
}

// Propagation types that would let mounts under the rootfs reach the host, or
// make pivot_root fail, if the rootfs mount inherited them.
bool shares_mounts(unsigned long propagation) {
  return propagation & (MS_SHARED | MS_UNBINDABLE);
}

// Makes the mount that holds `path` private (or a slave), walking up until a mount
// point is met (EINVAL means "not a mount point"), as runc does: pivot_root refuses
// a shared parent, and a shared parent would carry the rootfs bind to the host.
void make_parent_mount_unshared(std::string path, unsigned long propagation) {
  for (;;) {
    if (::mount(nullptr, path.c_str(), nullptr, propagation, nullptr) == 0) return;
    if (errno != EINVAL || path == "/") fail_errno("make the mount holding {} private", path);
    size_t slash = path.rfind('/');
    path.resize(slash ? slash : 1);
  }
}

// ---- leaving the host's root ------------------------------------------------

void pivot_into(int new_root) {
  UniqueFd old_root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!old_root) fail_errno("open /");
  if (::fchdir(new_root) < 0) fail_errno("chdir to the rootfs");
  // pivot_root(".", ".") stacks the old root on the new one, so no put_old
  // directory is needed; "." is then the old root, detached below.
  if (::syscall(SYS_pivot_root, ".", ".") < 0) fail_errno("pivot_root");
  if (::fchdir(old_root.get()) < 0) fail_errno("chdir to the old root");
  // rslave, so that the unmount does not propagate to the host's mounts.
  if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) fail_errno("make the old root rslave");
  if (::umount2(".", MNT_DETACH) < 0) fail_errno("detach the old root");
  if (::chdir("/") < 0) fail_errno("chdir to the new root");
}

std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      auto code = parse_uint(s.substr(i + 1, 3), 8);
      if (code) {
        out += static_cast<char>(*code);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Without pivot_root the host's procfs and sysfs stay in the mount namespace,
// which lets the container mount new ones even where the kernel would refuse
// (mount_too_revealing). Detach them first, or cover them, as runc does.
void hide_host_pseudo_filesystems(const std::string& rootfs) {
  std::string table = read_file("/proc/self/mountinfo");
  std::vector<std::string> targets;
  for (const auto& line : split(table, '\n')) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    auto fields = split(line, ' ');
    size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") dash++;
    if (fields.size() < 5 || dash + 1 >= fields.size()) continue;
    const std::string& fstype = fields[dash + 1];
    std::string point = unescape_mountinfo(fields[4]);
    if (fields[3] != "/" || (fstype != "proc" && fstype != "sysfs")) continue;
    if (point == rootfs || starts_with(point, rootfs + "/")) continue;
    targets.push_back(std::move(point));
  }
  for (const auto& point : targets) {
    if (::mount(nullptr, point.c_str(), nullptr, MS_SLAVE | MS_REC, nullptr) < 0) {
      if (errno == ENOENT || errno == EINVAL) continue; // already gone with a parent
      fail_errno("make {} rslave", point);
    }
    if (::umount2(point.c_str(), MNT_DETACH) == 0) continue;
    if (errno != EINVAL && errno != EPERM) fail_errno("unmount {}", point);
    if (::mount("tmpfs", point.c_str(), "tmpfs", 0, nullptr) < 0) fail_errno("cover {}", point);
  }
}

void move_into(const std::string& rootfs, int new_root) {
  hide_host_pseudo_filesystems(rootfs);
  if (::fchdir(new_root) < 0) fail_errno("chdir to the rootfs");
  if (::mount(rootfs.c_str(), "/", nullptr, MS_MOVE, nullptr) < 0) fail_errno("move the rootfs onto /");
  if (::chroot(".") < 0) fail_errno("chroot into the rootfs");
  if (::chdir("/") < 0) fail_errno("chdir to the new root");
}

// ---- inside the container ---------------------------------------------------

// Read-only for the mount at `path` only (not its children), keeping its other flags.
void make_readonly(const char* path) {
  if (kernel_apis().new_mount) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(AT_FDCWD, path, 0, &attr, sizeof attr) < 0) fail_errno("make {} read-only", path);
    return;
  }
  // A bind remount replaces the per-mount flags: carry the current ones over.
  struct statvfs st;
  if (::statvfs(path, &st) < 0) fail_errno("statvfs {}", path);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  constexpr std::pair<unsigned long, unsigned long> kKeep[] = {
      {ST_NOSUID, MS_NOSUID},   {ST_NODEV, MS_NODEV},           {ST_NOEXEC, MS_NOEXEC},
      {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
  for (auto [st_flag, ms] : kKeep)
    if (st.f_flag & st_flag) flags |= ms;
  if (::mount(nullptr, path, nullptr, flags, nullptr) < 0) fail_errno("make {} read-only", path);
}

void move_onto_path(int mount_fd, const std::string& path) {
  if (::move_mount(mount_fd, "", AT_FDCWD, path.c_str(), MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) < 0)
    fail_errno("mount over {}", path);
}

// A read-only bind of the path onto itself, its sub-mounts included.
void make_path_readonly(const std::string& path) {
  if (kernel_apis().new_mount) {
    UniqueFd tree(::open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    if (!tree) {
      if (errno == ENOENT) return;
      fail_errno("bind {}", path);
    }
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
      fail_errno("make {} read-only", path);
    move_onto_path(tree.get(), path);
    return;
  }
  if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
    if (errno == ENOENT) return;
    fail_errno("bind {}", path);
  }
  make_readonly(path.c_str());
}

// Masks files with /dev/null and directories with an empty read-only tmpfs.
// The first mask of each kind is cloned for the others, which costs two
// syscalls per path instead of a new tmpfs each time.
class Masker {
public:
  void mask(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) {
      if (errno == ENOENT) return;
      fail_errno("stat {}", path);
    }
    if (!kernel_apis().new_mount) return mask_legacy(path, S_ISDIR(st.st_mode));
    if (S_ISDIR(st.st_mode) && !empty_dir_) {
      empty_dir_ = empty_tmpfs();
      return move_onto_path(empty_dir_.get(), path);
    }
    int source = S_ISDIR(st.st_mode) ? empty_dir_.get() : dev_null();
    UniqueFd clone(::open_tree(source, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!clone) fail_errno("clone the mask for {}", path);
    move_onto_path(clone.get(), path);
  }

private:
  static UniqueFd empty_tmpfs() {
    try {
      return mnt::make_filesystem("tmpfs", "tmpfs", 0, "nr_blocks=1,nr_inodes=1", MOUNT_ATTR_RDONLY);
    } catch (const Error& e) {
      // Some distribution kernels refuse nr_inodes below 2 (runc's comment on Ubuntu 5.4).
      if (e.code() != EINVAL) throw;
      return mnt::make_filesystem("tmpfs", "tmpfs", 0, "nr_blocks=1,nr_inodes=2", MOUNT_ATTR_RDONLY);
    }
  }

  int dev_null() {
    if (dev_null_) return dev_null_.get();
    dev_null_.reset(::open("/dev/null", O_PATH | O_CLOEXEC));
    struct stat st;
    if (!dev_null_ || ::fstat(dev_null_.get(), &st) < 0) fail_errno("open /dev/null");
    if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
      fail("the container's /dev/null is not the null device");
    return dev_null_.get();
  }

  static void mask_legacy(const std::string& path, bool dir) {
    int rc = dir ? ::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY, "nr_blocks=1,nr_inodes=1")
                 : ::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr);
    if (rc < 0 && dir && errno == EINVAL)
      rc = ::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY, "nr_blocks=1,nr_inodes=2");
    if (rc < 0) fail_errno("mask {}", path);
  }

  UniqueFd empty_dir_, dev_null_;
};

} // namespace

void prepare_rootfs(const RootfsConfig& cfg) {
  UmaskGuard umask_guard(0);
  unsigned long propagation = cfg.rootfs_propagation;
  if (cfg.mount_namespace) {
    set_propagation("/", propagation ? propagation : MS_SLAVE | MS_REC);
    // The rootfs must be a mount point for pivot_root, and not shared. A slave stays a
    // slave through the bind below, so rootfsPropagation "slave" still sees host mounts.
    make_parent_mount_unshared(cfg.rootfs, (propagation & MS_SLAVE) ? MS_SLAVE : MS_PRIVATE);
    if (::mount(cfg.rootfs.c_str(), cfg.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
      fail_errno("bind the rootfs {} onto itself", cfg.rootfs);
    // By default runc's rootfs mount is private (it makes its parent so), and
    // the host's later mounts under the rootfs directory do not show up inside.
    if (!propagation) set_propagation(cfg.rootfs.c_str(), MS_PRIVATE);
  }

  UniqueFd root(::open(cfg.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) fail_errno("open the rootfs {}", cfg.rootfs);
  mnt::MountContext ctx{root.get(), cfg, {}};
  for (const auto& m : cfg.mounts) {
    try {
      mnt::mount_entry(ctx, m);
    } catch (Error& e) {
      std::string what = fmt::format("mount {} to {} (in rootfs {})", m.source.empty() ? m.type : m.source,
                                     m.destination, cfg.rootfs);
      if (e.message().empty()) throw Error(e.code(), what); // the mount call itself failed
      e.wrap(what);
      throw;
    }
  }
  with_context(fmt::format("set up /dev (in rootfs {})", cfg.rootfs),
               [&] { mnt::setup_dev(root.get(), cfg); });
}

void enter_rootfs(const RootfsConfig& cfg) {
  UniqueFd new_root(::open(cfg.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!new_root) fail_errno("open the rootfs {}", cfg.rootfs);
  with_context(fmt::format("enter the rootfs {}", cfg.rootfs), [&] {
    if (!cfg.mount_namespace) {
      // pivot_root would move the root of the runtime's own namespace.
      if (::fchdir(new_root.get()) < 0 || ::chroot(".") < 0 || ::chdir("/") < 0) fail_errno("chroot");
    } else if (cfg.no_pivot) {
      move_into(cfg.rootfs, new_root.get());
    } else {
      pivot_into(new_root.get());
    }
  });
  // Shared or unbindable can only be given to the new root now: before, it
  // would have reached the host, and pivot_root refuses shared mounts.
  if (cfg.mount_namespace && shares_mounts(cfg.rootfs_propagation)) set_propagation("/", cfg.rootfs_propagation);
}

void finalize_rootfs(const RootfsConfig& cfg) {
  for (const auto& m : cfg.mounts)
    if (mnt::is_deferred_readonly(m)) make_readonly(m.destination.c_str());
  for (const auto& path : cfg.readonly_paths)
    with_context("readonlyPaths", [&] { make_path_readonly(path); });
  Masker masker;
  for (const auto& path : cfg.masked_paths) with_context("maskedPaths", [&] { masker.mask(path); });
  if (cfg.readonly) with_context("root.readonly", [&] { make_readonly("/"); });
}

} // namespace berth
