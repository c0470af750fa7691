// linux.devices and the container's /dev: the default nodes runc creates,
// the configured ones, and the usual links.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/mount_util.hpp"

namespace berth {

namespace {

int64_t device_number(const JsonView& d, const char* key, char type, int64_t max) {
  auto v = d[key];
  if (!v.present()) v.bad(fmt::format("required for a '{}' device", type));
  int64_t n = v.as_int();
  if (n < 0 || n > max) v.bad(fmt::format("{} is out of range (0 to {})", n, max));
  return n;
}

DeviceSpec parse_device(const JsonView& d) {
  d.expect_object();
  DeviceSpec dev;
  auto path = d["path"];
  if (!path.present()) path.bad("required");
  std::string p = path.as_string();
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos)
    path.bad(fmt::format("must be an absolute path, got \"{}\"", p));
  dev.path = mnt::clean_path(p);

  auto type = d["type"];
  if (!type.present()) type.bad("required");
  std::string t = type.as_string();
  if (t.size() != 1 || !std::strchr("cbup", t[0]))
    type.bad(fmt::format("must be one of \"c\", \"b\", \"u\", \"p\", got \"{}\"", t));
  dev.type = t[0];
  if (dev.type != 'p') {
    dev.major = device_number(d, "major", dev.type, 0xfff);   // 12 bits, as the kernel's MAJOR()
    dev.minor = device_number(d, "minor", dev.type, 0xfffff); // 20 bits
  }
  if (auto v = d["fileMode"]; v.present()) dev.file_mode = v.as_u32();
  if (auto v = d["uid"]; v.present()) dev.uid = v.as_u32();
  if (auto v = d["gid"]; v.present()) dev.gid = v.as_u32();
  return dev;
}

} // namespace

std::vector<DeviceSpec> parse_devices(const JsonView& devices) {
  std::vector<DeviceSpec> out;
  out.reserve(devices.size());
  devices.each([&](const JsonView& d) { out.push_back(parse_device(d)); });
  return out;
}

namespace mnt {

namespace {

struct DefaultDevice {
  const char* path;
  unsigned major, minor;
};
// What every container gets, as runc and crun: c, 0666, root-owned.
constexpr DefaultDevice kDefaultDevices[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5},
                                             {"/dev/full", 1, 7},    {"/dev/random", 1, 8},
                                             {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};

bool has_mount_at(const RootfsConfig& cfg, std::string_view dest, bool binds_only) {
  for (const auto& m : cfg.mounts)
    if (m.destination == dest && (!binds_only || m.is_bind())) return true;
  return false;
}

class DevMaker {
public:
  DevMaker(int root_fd, const RootfsConfig& cfg)
      : root_fd_(root_fd), bind_(cfg.user_namespace),
        dev_(open_in_root(root_fd, "/dev", Create::directory).fd) {}

  int dev_fd() const { return dev_.get(); }

  void make(const std::string& path, char type, dev_t number, mode_t perm, uid_t uid, gid_t gid) {
    try {
      // Most nodes sit right in /dev: skip the lookup.
      if (starts_with(path, "/dev/") && path.find('/', 5) == std::string::npos)
        return make_in(dev_.get(), path.c_str() + 5, path, type, number, perm, uid, gid);
      size_t slash = path.rfind('/');
      UniqueFd dir = open_in_root(root_fd_, std::string_view(path).substr(0, slash), Create::directory).fd;
      make_in(dir.get(), path.c_str() + slash + 1, path, type, number, perm, uid, gid);
    } catch (Error& e) {
      e.wrap(fmt::format("create device {}", path));
      throw;
    }
  }

private:
  void make_in(int dir, const char* name, const std::string& path, char type, dev_t number, mode_t perm,
               uid_t uid, gid_t gid) {
    if (!bind_) {
      mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
      if (::mknodat(dir, name, kind | perm, number) == 0) {
        if ((uid || gid) && ::fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) fail_errno("chown");
        return;
      }
      if (errno == EEXIST) return; // what the image or a mount put there stays, as in runc
      if (errno != EPERM) fail_errno("mknod");
    }
    // No mknod in a user namespace: bind the host's node over an empty file.
    if (::mknodat(dir, name, S_IFREG, 0) < 0 && errno != EEXIST) fail_errno("create the bind target");
    UniqueFd target(::openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!target) fail_errno("open the bind target");
    bind_onto(path.c_str(), target.get(), false);
  }

  int root_fd_;
  bool bind_;
  UniqueFd dev_;
};

void link(int dev_fd, const char* target, const char* name) {
  if (::symlinkat(target, dev_fd, name) < 0 && errno != EEXIST)
    fail_errno("symlink /dev/{} -> {}", name, target);
}

} // namespace

void setup_dev(int root_fd, const RootfsConfig& cfg) {
  if (has_mount_at(cfg, "/dev", true)) return; // the host's /dev, or a prepared one: leave it alone
  DevMaker maker(root_fd, cfg);

  for (const auto& d : cfg.devices) {
    if (d.path == "/dev/ptmx") continue; // a link to the devpts instance, below
    mode_t perm = d.file_mode ? *d.file_mode & 07777 : 0666;
    maker.make(d.path, d.type, makedev(d.major, d.minor), perm, d.uid.value_or(0), d.gid.value_or(0));
  }
  for (const auto& d : kDefaultDevices) {
    bool configured = false;
    for (const auto& c : cfg.devices) configured = configured || c.path == d.path;
    if (!configured) maker.make(d.path, 'c', makedev(d.major, d.minor), 0666, 0, 0);
  }

  int dev = maker.dev_fd();
  link(dev, "/proc/self/fd", "fd");
  link(dev, "/proc/self/fd/0", "stdin");
  link(dev, "/proc/self/fd/1", "stdout");
  link(dev, "/proc/self/fd/2", "stderr");
  if (::access("/proc/kcore", F_OK) == 0) link(dev, "/proc/kcore", "core");
  if (has_mount_at(cfg, "/dev/pts", false)) {
    if (::unlinkat(dev, "ptmx", 0) < 0 && errno != ENOENT) fail_errno("remove /dev/ptmx");
    link(dev, "pts/ptmx", "ptmx");
  }
}

} // namespace mnt

} // namespace berth
