#include "cri/pod/namespaces.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <exception>
#include <string_view>
#include <thread>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"

namespace berth::cri {

namespace {

constexpr size_t kMaxSysctlName = 256;
constexpr size_t kMaxSysctlValue = 4095;  // one page, NUL excluded: what /proc/sys takes in one write
constexpr size_t kMaxSysctls = 1024;
constexpr size_t kMaxHostname = 64;      // HOST_NAME_MAX


// The kubelet's conversion (k8s.io/component-helpers/node/util/sysctl): a name whose first
// separator is '/' uses '/' between components and '.' inside them; swap them so every
// name is in the dotted form ("net/ipv4/conf/eno2.100/rp_filter" ->
// "net.ipv4.conf.eno2/100.rp_filter").
std::string to_dotted(std::string_view name) {
  auto first = name.find_first_of("./");
  std::string out(name);
  if (first == std::string_view::npos || name[first] == '.') return out;
  for (char& c : out) {
    if (c == '.') c = '/';
    else if (c == '/') c = '.';
  }
  return out;
}

bool component_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == '@' || c == '+';
}

// Sysctls under net.* that exist in a new network namespace only as read-only copies of
// the node's values (or not at all): refused up front, like any non-namespaced name.
// Others of that kind are refused by the kernel when written (and reported as such).
constexpr std::array<std::string_view, 9> kNodeOnlyNetSysctls = {
    "net.core.rmem_default", "net.core.rmem_max", "net.core.wmem_default",
    "net.core.wmem_max",     "net.core.netdev_max_backlog", "net.nf_conntrack_max",
    "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
};

struct NsType {
  const char* name;
  int flag;
};
constexpr std::array<NsType, 3> kTypes = {{{"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}}};

bool wanted(const PinRequest& req, std::string_view type) {
  return (type == "net" && req.net) || (type == "ipc" && req.ipc) || (type == "uts" && req.uts);
}

void validate_sysctl_value(const std::string& name, const std::string& value) {
  if (value.empty()) fail_code(EINVAL, "sysctl {}: empty value", quoted_value(name));
  if (value.size() > kMaxSysctlValue)
    fail_code(EINVAL, "sysctl {}: value longer than {} bytes", quoted_value(name), kMaxSysctlValue);
  for (unsigned char c : value)
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      fail_code(EINVAL, "sysctl {}: value {} has a control character (newline, NUL, ...)", quoted_value(name),
                quoted_value(value));
}

struct PlannedSysctl {
  std::string name, path, value;
};

// In the new namespaces (on the pinning thread): /proc/sys resolves net/* against the
// calling thread's network namespace and kernel/shm*, kernel/msg*, kernel/sem, fs/mqueue/*
// and kernel/domainname against its IPC and UTS namespaces.
void write_sysctl(const PlannedSysctl& s) {
  std::string path = "/proc/sys/" + s.path;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    int e = errno;
    if (e == ENOENT)
      fail_code(EINVAL, "sysctl {}: {} does not exist in the pod's namespace (unknown, or not namespaced)",
                quoted_value(s.name), path);
    if (e == EACCES || e == EPERM || e == EROFS)
      fail_code(EINVAL, "sysctl {}: {} is read-only in the pod's namespace (not namespaced)", quoted_value(s.name), path);
    fail_code(e, "sysctl {}: open {}", quoted_value(s.name), path);
  }
  ssize_t n;
  do n = ::write(fd.get(), s.value.data(), s.value.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    if (e == EINVAL || e == ERANGE)
      fail_code(EINVAL, "sysctl {}: the kernel refused the value {}", quoted_value(s.name), quoted_value(s.value));
    if (e == EPERM || e == EACCES)
      fail_code(EINVAL, "sysctl {}: {} cannot be written in the pod's namespace (not namespaced)", quoted_value(s.name),
                path);
    fail_code(e, "sysctl {}: write {}", quoted_value(s.name), path);
  }
  if (static_cast<size_t>(n) != s.value.size())
    fail_code(EINVAL, "sysctl {}: the kernel took {} of {} bytes of the value", quoted_value(s.name), n, s.value.size());
}

void loopback_up() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) sock.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("bring up lo: socket");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) < 0) fail_errno("bring up lo: get flags");
  if (ifr.ifr_flags & IFF_UP) return;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) < 0) fail_errno("bring up lo: set flags");
}

// Unmounts the namespaces pinned at path (all of them, should pins be stacked), never
// following a symlink and never touching a mount of another kind.
void unpin_one(const std::string& path) {
  for (int i = 0; is_pinned_namespace(path); ++i) {
    if (i == 64) fail_code(EBUSY, "unmount {}: still pinned after 64 unmounts", path);
    if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
      fail_errno("unmount {}", path);
  }
}

} // namespace

void validate_pod_hostname(const std::string& hostname) {
  if (hostname.size() > kMaxHostname)
    fail_code(EINVAL, "hostname {}: longer than {} bytes", quoted_value(hostname), kMaxHostname);
  for (char c : hostname)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
          c == '_'))
      fail_code(EINVAL, "hostname {}: only letters, digits, '-', '.' and '_' are allowed", quoted_value(hostname));
}

std::pair<std::string, std::string> sysctl_path_and_namespace(const std::string& name) {
  if (name.empty()) fail_code(EINVAL, "sysctl \"\": empty name");
  if (name.size() > kMaxSysctlName) fail_code(EINVAL, "sysctl {}: name longer than {} bytes", quoted_value(name), kMaxSysctlName);
  std::string dotted = to_dotted(name);

  // Components first, so that no odd name reaches the namespace rules or /proc/sys.
  std::string path;
  for (auto& part : split(dotted, '.', false)) {
    if (part.empty()) fail_code(EINVAL, "sysctl {}: empty name component", quoted_value(name));
    std::string comp = part;
    for (char& c : comp) {
      if (c == '/') c = '.';  // a '.' inside a component ("eno2.100")
      else if (!component_char_ok(c)) fail_code(EINVAL, "sysctl {}: invalid character in name", quoted_value(name));
    }
    if (comp.front() == '.' || comp.back() == '.' || comp.find("..") != std::string::npos)
      fail_code(EINVAL, "sysctl {}: invalid name component \"{}\"", quoted_value(name), comp);
    if (!path.empty()) path += '/';
    path += comp;
  }

  // The kubelet's rules (NamespacedBy): kernel.sem, kernel.shm*, kernel.msg*, fs.mqueue.*
  // belong to the IPC namespace, net.* to the network namespace; the UTS names as runc
  // takes them (kernel.hostname is the pod's hostname field, not a sysctl).
  std::string ns;
  if (dotted == "kernel.sem" || dotted.starts_with("kernel.shm") || dotted.starts_with("kernel.msg") ||
      dotted.starts_with("fs.mqueue."))
    ns = "ipc";
  else if (dotted.starts_with("net."))
    ns = "net";
  else if (dotted == "kernel.domainname")
    ns = "uts";
  else if (dotted == "kernel.hostname")
    fail_code(EINVAL, "sysctl {}: set the pod's hostname instead", quoted_value(name));
  else
    fail_code(EINVAL, "sysctl {}: not a namespaced sysctl", quoted_value(name));
  for (auto node_only : kNodeOnlyNetSysctls)
    if (dotted == node_only) fail_code(EINVAL, "sysctl {}: not namespaced (the node's value applies)", quoted_value(name));
  return {path, ns};
}

bool is_pinned_namespace(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return false;
  struct statfs sfs;
  if (::fstatfs(fd.get(), &sfs) < 0) return false;
  return static_cast<unsigned long>(sfs.f_type) == static_cast<unsigned long>(NSFS_MAGIC);
}

PinnedNamespaces pin_namespaces(const PinRequest& req) {
  // Everything that can be checked is checked before anything exists.
  if (req.dir.empty() || req.dir[0] != '/') fail_code(EINVAL, "namespace pin directory {}: not absolute", quoted_value(req.dir));
  if (req.uts) validate_pod_hostname(req.hostname);
  if (req.sysctls.size() > kMaxSysctls) fail_code(EINVAL, "sysctls: {} entries, at most {}", req.sysctls.size(), kMaxSysctls);
  std::vector<PlannedSysctl> sysctls;
  for (auto& [name, value] : req.sysctls) {
    auto [path, ns] = sysctl_path_and_namespace(name);
    if (!wanted(req, ns))
      fail_code(EINVAL, "sysctl {}: the pod uses the node's {} namespace", quoted_value(name),
                ns == "net" ? "network" : ns == "ipc" ? "IPC" : "UTS");
    validate_sysctl_value(name, value);
    sysctls.push_back({name, path, value});
  }
  int flags = 0;
  for (auto& t : kTypes)
    if (wanted(req, t.name)) flags |= t.flag;
  PinnedNamespaces out;
  if (flags == 0) return out;

  std::string dir = req.dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  bool made_dir = false;
  std::vector<std::string> made_files, mounted;
  auto undo = [&] {
    for (auto& p : mounted) {
      try {
        unpin_one(p);
      } catch (const Error&) {
      }
    }
    for (auto& p : made_files) ::unlink(p.c_str());
    if (made_dir) ::rmdir(dir.c_str());
  };

  try {
    if (auto slash = dir.rfind('/'); slash != std::string::npos && slash > 0) mkdir_p(dir.substr(0, slash), 0755);
    if (::mkdir(dir.c_str(), 0711) == 0) made_dir = true;
    else if (errno != EEXIST) fail_errno("create namespace pin directory {}", dir);

    std::vector<std::pair<std::string, std::string>> pins;  // type, path
    for (auto& t : kTypes) {
      if (!wanted(req, t.name)) continue;
      std::string path = dir + "/" + t.name;
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444));
      if (fd) {
        made_files.push_back(path);
      } else if (errno == EEXIST) {
        // A pin that is in place belongs to someone: never replace it. An empty file left
        // by an interrupted pin is reused.
        struct stat st;
        if (is_pinned_namespace(path)) fail_code(EEXIST, "pin {}: a namespace is already pinned there", path);
        if (::lstat(path.c_str(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0)
          fail_code(EEXIST, "pin {}: exists and is not an empty file", path);
        made_files.push_back(path);
      } else {
        fail_errno("create namespace pin {}", path);
      }
      pins.emplace_back(t.name, path);
    }

    // unshare(2) of these three types is allowed in a multi-threaded process and changes
    // only the calling thread: a thread of its own makes and pins them and then ends, so
    // the caller stays where it is. The bind mounts land in the process's mount namespace
    // (threads share it), where containers' runtimes find them by path.
    std::exception_ptr failure;
    std::thread worker([&] {
      try {
        if (::unshare(flags) < 0) fail_errno("unshare namespaces");
        if (req.uts && !req.hostname.empty() && ::sethostname(req.hostname.data(), req.hostname.size()) < 0)
          fail_errno("set hostname {}", quoted_value(req.hostname));
        if (req.net) loopback_up();
        for (auto& s : sysctls) write_sysctl(s);
        for (auto& [type, path] : pins) {
          std::string source = "/proc/thread-self/ns/" + type;
          if (::mount(source.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) < 0)
            fail_errno("bind mount {} on {}", source, path);
          mounted.push_back(path);
        }
      } catch (...) {
        failure = std::current_exception();
      }
    });
    worker.join();
    if (failure) std::rethrow_exception(failure);
    for (auto& [type, path] : pins) {
      if (type == "net") out.net = path;
      else if (type == "ipc") out.ipc = path;
      else out.uts = path;
    }
  } catch (...) {
    undo();
    throw;
  }
  return out;
}

void unpin_namespaces(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') fail_code(EINVAL, "namespace pin directory {}: not absolute", quoted_value(dir));
  for (auto& t : kTypes) {
    std::string path = path_join(dir, t.name);
    unpin_one(path);
    // What is left of a pin is an empty file; anything else there is not ours to remove.
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) {
      if (errno == ENOENT) continue;
      fail_errno("stat {}", path);
    }
    if (!S_ISREG(st.st_mode) || st.st_size != 0)
      fail_code(EINVAL, "remove namespace pin {}: not a namespace pin, left in place", path);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) fail_errno("remove namespace pin {}", path);
  }
  if (::rmdir(dir.c_str()) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    fail_errno("remove namespace pin directory {}", dir);
}

} // namespace berth::cri
