#include "cni/lib/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <thread>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"

namespace berth::cni {

namespace {

void make_shared_mountpoint(const std::string& dir) {
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return;
  if (errno != EINVAL) fail_errno("make {} a shared mount", dir);
  // Not a mount point yet: bind it onto itself first.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) < 0) fail_errno("bind mount {}", dir);
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) fail_errno("make {} a shared mount", dir);
}

} // namespace

std::string create_netns(const std::string& dir, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    fail("invalid network namespace name \"{}\"", name);
  mkdir_p(dir, 0755);
  make_shared_mountpoint(dir);
  std::string path = path_join(dir, name);
  {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!fd) fail_errno("create network namespace pin {}", path);
  }
  // unshare(CLONE_NEWNET) changes only the calling thread: do it on a thread of
  // its own so the caller stays in its namespace.
  int err = 0;
  std::string what;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) < 0) {
      err = errno;
      what = "unshare network namespace";
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0) {
      err = errno;
      what = fmt::format("bind mount network namespace on {}", path);
    }
  });
  t.join();
  if (err) {
    ::unlink(path.c_str());
    fail_code(err, "{}", what);
  }
  return path;
}

void remove_netns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    fail_errno("unmount network namespace {}", path);
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) fail_errno("remove network namespace pin {}", path);
}

} // namespace berth::cni
