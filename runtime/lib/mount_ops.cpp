// Performing one config.json mount inside the rootfs. With the new mount API
// the mount is built detached (open_tree or fsopen/fsmount), given its
// attributes, and attached to the resolved target fd with move_mount, so no
// path is looked up twice. Kernels without it (ENOSYS) get mount(2) onto
// /proc/self/fd/N, re-resolving the target when the new mount must be touched.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/mount_util.hpp"

namespace berth::mnt {

MountAttrs attrs_from_ms(unsigned long set, unsigned long clear) {
  static constexpr std::pair<unsigned long, uint64_t> kBits[] = {
      {MS_RDONLY, MOUNT_ATTR_RDONLY},         {MS_NOSUID, MOUNT_ATTR_NOSUID},
      {MS_NODEV, MOUNT_ATTR_NODEV},           {MS_NOEXEC, MOUNT_ATTR_NOEXEC},
      {MS_NODIRATIME, MOUNT_ATTR_NODIRATIME}, {MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW},
  };
  MountAttrs a;
  for (auto [ms, attr] : kBits) {
    if (set & ms)
      a.set |= attr;
    else if (clear & ms)
      a.clr |= attr;
  }
  // The atime settings are an enum; as in mount(2), strictatime beats noatime
  // beats relatime, and clearing any of them means the default, relatime.
  if (set & MS_STRICTATIME)
    a.set |= MOUNT_ATTR_STRICTATIME;
  else if (set & MS_NOATIME)
    a.set |= MOUNT_ATTR_NOATIME;
  if ((set | clear) & (MS_STRICTATIME | MS_NOATIME | MS_RELATIME)) a.clr |= MOUNT_ATTR__ATIME;
  return a;
}

namespace {

void setattr(int fd, unsigned int flags, mount_attr attr, const char* what) {
  if (::mount_setattr(fd, "", AT_EMPTY_PATH | flags, &attr, sizeof attr) < 0) fail_errno("{}", what);
}

// An empty message stands for "the mount itself failed": the caller's context
// ("mount proc to /proc (in rootfs ...)") then says it all.
void attach(int mount_fd, int target_fd) {
  if (::move_mount(mount_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    fail_errno("");
}

// After mount(2) onto /proc/self/fd/N, N still names the covered directory:
// look the destination up again to reach the new mount.
UniqueFd reopen_top(MountContext& ctx, const MountSpec& m) {
  return open_in_root(ctx.root_fd, m.destination, Create::no).fd;
}

// New-API mounts start private (detached clones and fsmount results are) and
// stay private when attached under a parent that is not shared, which none is
// until some mount asks for shared: "rprivate", the usual option, is then a no-op.
bool needs_propagation(MountContext& ctx, unsigned long propagation) {
  if (propagation & MS_SHARED) ctx.shared_seen = true;
  return propagation && (ctx.shared_seen || !(propagation & MS_PRIVATE));
}

bool selinux_enabled() {
  static const bool enabled = ::access("/sys/fs/selinux/enforce", F_OK) == 0;
  return enabled;
}

// ---- idmapped mounts ------------------------------------------------------

std::string map_text(const std::vector<IdMapping>& maps) {
  std::string text;
  for (const auto& m : maps) text += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
  return text;
}

// A user namespace holding the mappings: a child is cloned straight into a new
// one (no sync needed), its maps are written, its ns is opened, it is killed.
UniqueFd make_userns(const std::string& uid_map, const std::string& gid_map) {
  long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) fail_errno("clone a user namespace for an idmapped mount");
  if (pid == 0) {
    for (;;) ::pause();
  }
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {}
    }
  } reaper{static_cast<pid_t>(pid)};

  std::string proc = fmt::format("/proc/{}/", pid);
  with_context("write uid_map for an idmapped mount", [&] { write_file(proc + "uid_map", uid_map, false); });
  with_context("write gid_map for an idmapped mount", [&] { write_file(proc + "gid_map", gid_map, false); });
  UniqueFd ns(::open((proc + "ns/user").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) fail_errno("open {}ns/user", proc);
  return ns;
}

int userns_for(MountContext& ctx, const MountSpec& m) {
  const auto& uids = m.uid_mappings.empty() ? ctx.cfg.uid_mappings : m.uid_mappings;
  const auto& gids = m.gid_mappings.empty() ? ctx.cfg.gid_mappings : m.gid_mappings;
  if (uids.empty() || gids.empty())
    fail("an idmapped mount needs uidMappings and gidMappings, on the mount or in linux.uidMappings");
  std::string uid_map = map_text(uids), gid_map = map_text(gids);
  std::string key = uid_map + '|' + gid_map;
  for (auto& [k, fd] : ctx.userns_cache)
    if (k == key) return fd.get();
  ctx.userns_cache.emplace_back(std::move(key), make_userns(uid_map, gid_map));
  return ctx.userns_cache.back().second.get();
}

// ---- bind mounts ----------------------------------------------------------

void bind_legacy(MountContext& ctx, const MountSpec& m) {
  if (m.idmap) fail_code(ENOSYS, "idmapped mounts need mount_setattr (Linux 5.12)");
  if (m.rec_attr_set || m.rec_attr_clr)
    fail_code(ENOSYS, "recursive mount attributes need mount_setattr (Linux 5.12)");
  UniqueFd source(::open(m.source.c_str(), O_PATH | O_CLOEXEC));
  if (!source) fail_errno("open bind source");
  Resolved target = open_in_root(ctx.root_fd, m.destination, Create::like_source, source.get());
  if (::mount(ProcFdPath(source.get()).c_str(), ProcFdPath(target.fd.get()).c_str(), nullptr,
              MS_BIND | (m.recursive ? MS_REC : 0), nullptr) < 0)
    fail_errno("");

  UniqueFd top;
  // A bind keeps the source's flags; a second, remounting call sets ours. As
  // runc does, retry with the source's lockable flags if the kernel refuses to
  // clear them (a mount inherited in a user namespace).
  constexpr unsigned long kVfsFlags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                      MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW;
  if ((m.flags & kVfsFlags) || (m.clear_flags & kVfsFlags)) {
    top = reopen_top(ctx, m);
    ProcFdPath path(top.get());
    unsigned long flags = MS_BIND | MS_REMOUNT | (m.flags & kVfsFlags);
    if (::mount(nullptr, path.c_str(), nullptr, flags, nullptr) < 0) {
      struct statvfs st;
      if (errno != EPERM || ::fstatvfs(top.get(), &st) < 0) fail_errno("remount bind");
      constexpr std::pair<unsigned long, unsigned long> kLocked[] = {
          {ST_RDONLY, MS_RDONLY},    {ST_NOSUID, MS_NOSUID},   {ST_NODEV, MS_NODEV},
          {ST_NOEXEC, MS_NOEXEC},    {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME},
          {ST_RELATIME, MS_RELATIME}};
      for (auto [st_flag, ms] : kLocked)
        if ((st.f_flag & st_flag) && !(m.clear_flags & ms)) flags |= ms;
      if (::mount(nullptr, path.c_str(), nullptr, flags, nullptr) < 0) fail_errno("remount bind");
    }
  }
  if (m.propagation) {
    if (!top) top = reopen_top(ctx, m);
    apply_propagation(top.get(), m.propagation);
  }
}

void bind(MountContext& ctx, const MountSpec& m) {
  if (m.premade_tree >= 0) {
    // Idmapped by the runtime on the host side: set the remaining attributes, attach.
    Resolved target = open_in_root(ctx.root_fd, m.destination, Create::like_source, m.premade_tree);
    MountAttrs top = attrs_from_ms(m.flags, m.clear_flags);
    if (!top.empty()) setattr(m.premade_tree, 0, {top.set, top.clr, 0, 0}, "set mount attributes");
    if (m.rec_attr_set || m.rec_attr_clr)
      setattr(m.premade_tree, AT_RECURSIVE, {m.rec_attr_set, m.rec_attr_clr, 0, 0},
              "set recursive mount attributes");
    attach(m.premade_tree, target.fd.get());
    if (needs_propagation(ctx, m.propagation)) apply_propagation(m.premade_tree, m.propagation);
    return;
  }
  if (!kernel_apis().new_mount) return bind_legacy(ctx, m);
  UniqueFd tree(::open_tree(AT_FDCWD, m.source.c_str(),
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m.recursive ? AT_RECURSIVE : 0)));
  if (!tree) {
    if (errno != ENOSYS) fail_errno("open bind source");
    kernel_apis().new_mount = false;
    return bind_legacy(ctx, m);
  }
  Resolved target = open_in_root(ctx.root_fd, m.destination, Create::like_source, tree.get());

  MountAttrs top = attrs_from_ms(m.flags, m.clear_flags);
  if (m.idmap) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns_for(ctx, m));
    if (!m.recursive_idmap) { // one call for the idmap and the top-level flags
      attr.attr_set |= top.set;
      attr.attr_clr = top.clr;
      top = {};
    }
    setattr(tree.get(), m.recursive_idmap ? AT_RECURSIVE : 0, attr, "idmap the mount");
  }
  if (!top.empty()) setattr(tree.get(), 0, {top.set, top.clr, 0, 0}, "set mount attributes");
  if (m.rec_attr_set || m.rec_attr_clr)
    setattr(tree.get(), AT_RECURSIVE, {m.rec_attr_set, m.rec_attr_clr, 0, 0},
            "set recursive mount attributes");
  attach(tree.get(), target.fd.get());
  if (needs_propagation(ctx, m.propagation)) apply_propagation(tree.get(), m.propagation);
}

// ---- other filesystems ----------------------------------------------------

// The kernel explains fsconfig failures in messages read from the context fd.
[[noreturn]] void fail_fs(int fs_fd, std::string_view what) {
  int err = errno;
  char buf[512];
  std::string detail;
  ssize_t n;
  while ((n = ::read(fs_fd, buf, sizeof buf - 1)) > 0) {
    buf[n] = '\0';
    if (buf[0] == 'e' && buf[1] == ' ') detail = std::string(trim(buf + 2));
  }
  if (detail.empty()) fail_code(err, "{}", what);
  if (what.empty()) fail_code(err, "{}", detail);
  fail_code(err, "{}: {}", what, detail);
}

// Splits "a=1,context=\"x,y\",b" at the commas outside quotes.
template <typename Fn>
void each_data_option(std::string_view data, Fn&& fn) {
  size_t start = 0;
  bool quoted = false;
  for (size_t i = 0; i <= data.size(); i++) {
    if (i < data.size() && data[i] == '"') quoted = !quoted;
    if (i < data.size() && (data[i] != ',' || quoted)) continue;
    if (i > start) fn(data.substr(start, i - start));
    start = i + 1;
  }
}

// The data string: an existing directory lends its mode to a tmpfs (as runc
// does; an explicit mode= later wins), and the SELinux mount label is added.
std::string filesystem_data(MountContext& ctx, const MountSpec& m, std::string_view type,
                            const Resolved& target) {
  std::string data;
  bool has_mode = starts_with(m.data, "mode=") || m.data.find(",mode=") != std::string::npos;
  if (type == "tmpfs" && target.existed && !has_mode) {
    struct stat st;
    if (::fstat(target.fd.get(), &st) == 0) data = fmt::format("mode={:04o}", st.st_mode & 07777);
  }
  if (!ctx.cfg.mount_label.empty() && type != "proc" && type != "sysfs" && type != "cgroup2" &&
      type != "mqueue" && selinux_enabled())
    data += fmt::format("{}context=\"{}\"", data.empty() ? "" : ",", ctx.cfg.mount_label);
  if (!m.data.empty()) data += (data.empty() ? "" : ",") + m.data;
  return data;
}

void copy_up(int original_dir, int tmpfs_root) {
  with_context("tmpcopyup", [&] {
    copy_tree(original_dir, tmpfs_root);
    struct stat st;
    if (::fstat(original_dir, &st) == 0 && (st.st_uid != 0 || st.st_gid != 0))
      ::fchownat(tmpfs_root, "", st.st_uid, st.st_gid, AT_EMPTY_PATH);
  });
}

void mount_filesystem(MountContext& ctx, const MountSpec& m, std::string_view type) {
  // procfs and sysfs must land on a real directory, never through a symlink.
  bool strict_target = type == "proc" || type == "sysfs";
  Resolved target;
  try {
    target = open_in_root(ctx.root_fd, m.destination, Create::directory, -1, strict_target);
  } catch (const Error& e) {
    if (!strict_target || e.code() != ENOTDIR) throw;
    fail_code(ENOTDIR, "{} must be mounted on a directory, not on a file or a symlink", type);
  }
  std::string data = filesystem_data(ctx, m, type, target);
  const std::string& source = m.source.empty() ? m.type : m.source;

  UniqueFd original; // what tmpcopyup copies, opened before it is covered
  if (m.tmpcopyup && type == "tmpfs" && target.existed) {
    original.reset(::openat(target.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!original) fail_errno("tmpcopyup: open {}", m.destination);
  }
  // tmpfs and /dev stay writable until finalize_rootfs: /dev gets its nodes,
  // hooks may still write.
  unsigned long flags = m.flags;
  uint64_t rec_set = m.rec_attr_set;
  if (is_deferred_readonly(m)) {
    flags &= ~MS_RDONLY;
    rec_set &= ~MOUNT_ATTR_RDONLY;
  }

  if (kernel_apis().new_mount) {
    MountAttrs a = attrs_from_ms(flags, 0);
    uint64_t attrs = (a.set & ~m.rec_attr_clr) | rec_set;
    if ((m.rec_attr_clr & MOUNT_ATTR__ATIME) == MOUNT_ATTR__ATIME)
      attrs = (attrs & ~MOUNT_ATTR__ATIME) | (rec_set & MOUNT_ATTR__ATIME);
    UniqueFd mnt;
    try {
      mnt = make_filesystem(type, source, flags, data, attrs);
    } catch (const Error& e) {
      if (e.code() != ENOSYS) throw;
      kernel_apis().new_mount = false;
    }
    if (mnt) {
      if (original) copy_up(original.get(), mnt.get());
      attach(mnt.get(), target.fd.get());
      if (needs_propagation(ctx, m.propagation)) apply_propagation(mnt.get(), m.propagation);
      return;
    }
  }

  constexpr unsigned long kNotForNewMounts = MS_REMOUNT | MS_BIND | MS_REC;
  if (::mount(source.c_str(), ProcFdPath(target.fd.get()).c_str(), std::string(type).c_str(),
              flags & ~kNotForNewMounts, data.empty() ? nullptr : data.c_str()) < 0)
    fail_errno("");
  if (!original && !m.propagation) return;
  UniqueFd top = reopen_top(ctx, m);
  if (original) copy_up(original.get(), top.get());
  if (m.propagation) apply_propagation(top.get(), m.propagation);
}

// "remount": change an existing mount at the destination, with mount(2) as runc.
void remount(MountContext& ctx, const MountSpec& m) {
  UniqueFd target = open_in_root(ctx.root_fd, m.destination, Create::no).fd;
  unsigned long flags = m.flags | (m.is_bind() ? MS_BIND : 0);
  if (::mount(nullptr, ProcFdPath(target.get()).c_str(), m.is_bind() ? nullptr : m.type.c_str(), flags,
              m.data.empty() ? nullptr : m.data.c_str()) < 0)
    fail_errno("remount");
  if (m.propagation) apply_propagation(target.get(), m.propagation);
}

// Where the host keeps its cgroup2 hierarchy: /sys/fs/cgroup, or the
// "unified" mount of a hybrid host.
std::string host_cgroup2_root() {
  struct statfs st;
  if (::statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC) return "/sys/fs/cgroup";
  return "/sys/fs/cgroup/unified";
}

void bind_instead(MountContext& ctx, const MountSpec& m, std::string source, bool recursive) {
  MountSpec b = m;
  b.type = "bind";
  b.source = std::move(source);
  b.recursive = recursive;
  b.data.clear();
  bind(ctx, b);
}

} // namespace

UniqueFd make_filesystem(std::string_view type, const std::string& source, unsigned long flags,
                         const std::string& data, uint64_t attrs) {
  UniqueFd fs(::fsopen(std::string(type).c_str(), FSOPEN_CLOEXEC));
  if (!fs) fail_errno("fsopen {}", type);
  auto set = [&](const std::string& key, const char* value) {
    unsigned cmd = value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG;
    if (::fsconfig(fs.get(), cmd, key.c_str(), value, 0) < 0)
      fail_fs(fs.get(), value ? fmt::format("option {}={}", key, value) : fmt::format("option {}", key));
  };
  if (!source.empty()) set("source", source.c_str());
  // Superblock flags travel as parameters; the rest are mount attributes.
  static constexpr std::pair<unsigned long, const char*> kSbFlags[] = {
      {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"}, {MS_MANDLOCK, "mand"}, {MS_LAZYTIME, "lazytime"}};
  for (auto [ms, name] : kSbFlags)
    if (flags & ms) set(name, nullptr);
  each_data_option(data, [&](std::string_view opt) {
    size_t eq = opt.find('=');
    if (eq == std::string_view::npos) return set(std::string(opt), nullptr);
    std::string_view value = opt.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    set(std::string(opt.substr(0, eq)), std::string(value).c_str());
  });
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) fail_fs(fs.get(), "");
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(attrs)));
  if (!mnt) fail_errno("");
  return mnt;
}

bool is_deferred_readonly(const MountSpec& m) {
  return !m.is_bind() && (m.type == "tmpfs" || m.destination == "/dev") &&
         ((m.flags & MS_RDONLY) || (m.rec_attr_set & MOUNT_ATTR_RDONLY));
}

void apply_propagation(int mount_fd, unsigned long propagation) {
  if (kernel_apis().new_mount) {
    mount_attr attr{};
    attr.propagation = propagation & ~MS_REC;
    setattr(mount_fd, (propagation & MS_REC) ? AT_RECURSIVE : 0, attr, "set propagation");
    return;
  }
  if (::mount(nullptr, ProcFdPath(mount_fd).c_str(), nullptr, propagation, nullptr) < 0)
    fail_errno("set propagation");
}

void bind_onto(const char* source, int target_fd, bool recursive) {
  if (kernel_apis().new_mount) {
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
    UniqueFd tree(::open_tree(AT_FDCWD, source, flags));
    if (!tree) fail_errno("open_tree {}", source);
    attach(tree.get(), target_fd);
    return;
  }
  unsigned long flags = MS_BIND | (recursive ? MS_REC : 0);
  if (::mount(source, ProcFdPath(target_fd).c_str(), nullptr, flags, nullptr) < 0) fail_errno("bind {}", source);
}

void mount_entry(MountContext& ctx, const MountSpec& m) {
  if (m.destination == "/") fail("cannot mount over the container's root directory");
  if (m.flags & MS_REMOUNT) return remount(ctx, m);
  if (m.is_bind()) return bind(ctx, m);

  std::string_view type = m.type;
  if (type == "cgroup") type = "cgroup2";
  if (type == "cgroup2" && ctx.cfg.cgroup_namespace && !ctx.cfg.cgroup_path.empty())
    return bind_instead(ctx, m, ctx.cfg.cgroup_path, false);
  try {
    mount_filesystem(ctx, m, type);
  } catch (const Error& e) {
    // A user namespace without its own network namespace may not mount sysfs,
    // and without its own cgroup namespace not cgroup2: bind the host's, as runc.
    if (type == "sysfs" && e.code() == EPERM) {
      log::debug("mount sysfs to {}: {}; binding the host's /sys instead", m.destination, e.what());
      bind_instead(ctx, m, "/sys", true);
    } else if (type == "cgroup2" && (e.code() == EPERM || e.code() == EBUSY)) {
      log::debug("mount cgroup2 to {}: {}; binding the host's instead", m.destination, e.what());
      bind_instead(ctx, m, host_cgroup2_root(), false);
    } else {
      throw;
    }
  }
}

} // namespace berth::mnt

namespace berth {

UniqueFd make_idmapped_tree(const MountSpec& m, int container_userns) {
  UniqueFd tree(::open_tree(AT_FDCWD, m.source.c_str(),
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m.recursive ? AT_RECURSIVE : 0)));
  if (!tree) fail_errno("idmapped mount of {}: open_tree", m.source);
  UniqueFd own_ns;
  int ns = container_userns;
  if (!m.uid_mappings.empty())
    ns = (own_ns = mnt::make_userns(mnt::map_text(m.uid_mappings), mnt::map_text(m.gid_mappings))).get();
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(ns);
  mnt::setattr(tree.get(), m.recursive_idmap ? AT_RECURSIVE : 0, attr,
               fmt::format("idmapped mount of {}", m.source).c_str());
  return tree;
}

} // namespace berth
