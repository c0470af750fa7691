#include "cri/pod/cgroup_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <exception>
#include <string_view>
#include <thread>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"

namespace berth::cri {

namespace {

constexpr size_t kMaxCgroupFile = 4 << 20;  // cgroup.procs of a large pod; the rest are tiny
constexpr int kMaxSubtreeDepth = 32;
constexpr size_t kMaxSubtreeCgroups = 4096;

bool is_cgroup2(const char* path) {
  struct statfs sfs;
  return ::statfs(path, &sfs) == 0 && static_cast<unsigned long>(sfs.f_type) == CGROUP2_SUPER_MAGIC;
}

// The cgroup v2 path of this process ("0::/system.slice/berthd.service" -> that path).
std::string own_cgroup() {
  auto text = try_read_file("/proc/self/cgroup");
  if (!text) return "/";
  for (auto& line : split(*text, '\n'))
    if (starts_with(line, "0::")) return line.substr(3);
  return "/";
}

// runc's CleanPath for cgroups: "." dropped, ".." never climbs above the root.
void push_clean(std::vector<std::string>& parts, std::string_view path) {
  for (auto& part : split(path, '/')) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
}

// A cgroupfs path relative to the hierarchy's root, as berth (and runc) place it: an
// absolute path as it is, a relative one under the parent of the runtime's own cgroup
// (the runtime inherits berthd's).
std::string cgroupfs_relative(const std::string& path, std::string_view what) {
  if (path.empty()) fail_code(EINVAL, "{}: empty cgroup path", what);
  if (path[0] != '/' && path.find(':') != std::string::npos)
    fail_code(EINVAL, "{} \"{}\": a systemd slice:prefix:name path under the cgroupfs driver", what, path);
  std::vector<std::string> parts;
  if (path[0] != '/') {
    push_clean(parts, own_cgroup());
    if (!parts.empty()) parts.pop_back();
    std::vector<std::string> inner;
    push_clean(inner, path);  // cleaned on its own: ".." cannot climb out of the base
    parts.insert(parts.end(), inner.begin(), inner.end());
  } else {
    push_clean(parts, path);
  }
  std::string out;
  for (auto& p : parts) out += "/" + p;
  return out;
}

// "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "" (the root).
std::string expand_slice(const std::string& slice, std::string_view what) {
  constexpr std::string_view suffix = ".slice";
  if (slice.size() <= suffix.size() || !slice.ends_with(suffix) || slice.find('/') != std::string::npos)
    fail_code(EINVAL, "{}: invalid slice name \"{}\"", what, slice);
  std::string name = slice.substr(0, slice.size() - suffix.size());
  if (name == "-") return "";
  std::string path, prefix;
  for (auto& component : split(name, '-', false)) {
    if (component.empty()) fail_code(EINVAL, "{}: invalid slice name \"{}\"", what, slice);
    path += "/" + prefix + component + std::string(suffix);
    prefix += component + "-";
  }
  return path;
}

std::optional<std::string> read_at(int dirfd, const char* name) {
  UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;  // ENODEV when the cgroup went away under us
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxCgroupFile) return std::nullopt;
  }
  return out;
}

std::optional<uint64_t> read_uint_at(int dirfd, const char* name) {
  auto text = read_at(dirfd, name);
  if (!text) return std::nullopt;
  return parse_uint(trim(*text));
}

// A flat-keyed file ("usage_usec 123\n..."): the value of key.
std::optional<uint64_t> keyed(const std::optional<std::string>& text, std::string_view key) {
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return parse_uint(trim(line.substr(key.size() + 1)));
  }
  return std::nullopt;
}

std::optional<uint64_t> limit_at(int dirfd, const char* name) {
  auto text = read_at(dirfd, name);
  if (!text || trim(*text) == "max") return std::nullopt;
  return parse_uint(trim(*text));
}

// Processes of the cgroup and its descendants (cgroup.procs lines), for hosts without
// the pids controller.
bool count_procs(int dirfd, int depth, uint64_t& count, size_t& visited) {
  if (depth > kMaxSubtreeDepth || ++visited > kMaxSubtreeCgroups) return false;
  auto procs = read_at(dirfd, "cgroup.procs");
  if (!procs) return false;
  for (char c : *procs)
    if (c == '\n') ++count;
  int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return false;
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return false;
  }
  bool ok = true;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type != DT_DIR || std::string_view(e->d_name) == "." || std::string_view(e->d_name) == "..") continue;
    UniqueFd child(::openat(dirfd, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) continue;  // removed meanwhile
    if (!count_procs(child.get(), depth + 1, count, visited)) {
      ok = false;
      break;
    }
  }
  ::closedir(d);
  return ok;
}

std::vector<InterfaceUsage> parse_net_dev(std::string_view text) {
  std::vector<InterfaceUsage> out;
  size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (++line_no <= 2) continue;  // two header lines
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(trim(line.substr(0, colon)));
    if (name.empty() || name == "lo") continue;
    std::vector<uint64_t> f;
    for (auto& w : split(line.substr(colon + 1), ' ')) {
      auto v = parse_uint(trim(w));
      if (!v) break;
      f.push_back(*v);
    }
    if (f.size() < 16) continue;
    InterfaceUsage u;
    u.name = std::move(name);
    u.rx_bytes = f[0];
    u.rx_errors = f[2];
    u.tx_bytes = f[8];
    u.tx_errors = f[10];
    out.push_back(std::move(u));
  }
  return out;
}

} // namespace

const std::string& cgroup2_mount() {
  static const std::string root = [] {
    if (is_cgroup2("/sys/fs/cgroup")) return std::string("/sys/fs/cgroup");
    if (is_cgroup2("/sys/fs/cgroup/unified")) return std::string("/sys/fs/cgroup/unified");
    return std::string();
  }();
  return root;
}

std::string cgroup_dir(CgroupDriver driver, const std::string& cgroups_path) {
  const std::string& root = cgroup2_mount();
  std::string rel;
  if (driver == CgroupDriver::cgroupfs) {
    rel = cgroupfs_relative(cgroups_path, "cgroupsPath");
  } else {
    auto parts = split(cgroups_path, ':', false);
    if (parts.size() != 3)
      fail_code(EINVAL, "cgroupsPath \"{}\": expected slice:prefix:name for the systemd driver", cgroups_path);
    std::string slice = parts[0].empty() ? "system.slice" : parts[0];
    const std::string& prefix = parts[1];
    const std::string& name = parts[2];
    for (auto* s : {&prefix, &name})
      if (s->find('/') != std::string::npos || *s == "." || *s == "..")
        fail_code(EINVAL, "cgroupsPath \"{}\": invalid unit name part \"{}\"", cgroups_path, *s);
    if (name.empty()) fail_code(EINVAL, "cgroupsPath \"{}\": empty name", cgroups_path);
    // runc: a name that is a slice is the unit itself; else a scope "prefix-name.scope".
    std::string unit = name.ends_with(".slice") ? name : prefix.empty() ? name + ".scope" : prefix + "-" + name + ".scope";
    rel = expand_slice(slice, "cgroupsPath") + "/" + unit;
  }
  if (root.empty()) return "";
  return root + rel;
}

std::string cgroup_parent_dir(CgroupDriver driver, const std::string& parent) {
  if (parent.empty()) return "";
  std::string rel = driver == CgroupDriver::cgroupfs ? cgroupfs_relative(parent, "cgroup parent")
                                                     : expand_slice(parent, "cgroup parent");
  const std::string& root = cgroup2_mount();
  if (root.empty()) return "";
  return root + rel;
}

std::optional<CgroupUsage> read_cgroup_usage(const std::string& dir) {
  UniqueFd dfd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    fail_errno("open cgroup {}", dir);
  }
  CgroupUsage u;
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  u.timestamp_ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;

  auto cpu = read_at(dfd.get(), "cpu.stat");
  auto usec = [](std::optional<uint64_t> v) -> std::optional<uint64_t> {
    if (v) return *v * 1000;
    return std::nullopt;
  };
  u.cpu_usage_ns = usec(keyed(cpu, "usage_usec"));
  u.cpu_user_ns = usec(keyed(cpu, "user_usec"));
  u.cpu_system_ns = usec(keyed(cpu, "system_usec"));

  u.memory_usage_bytes = read_uint_at(dfd.get(), "memory.current");
  auto mstat = read_at(dfd.get(), "memory.stat");
  u.memory_rss_bytes = keyed(mstat, "anon");
  u.page_faults = keyed(mstat, "pgfault");
  u.major_page_faults = keyed(mstat, "pgmajfault");
  if (u.memory_usage_bytes) {
    uint64_t inactive = keyed(mstat, "inactive_file").value_or(0);
    u.memory_working_set_bytes = *u.memory_usage_bytes > inactive ? *u.memory_usage_bytes - inactive : 0;
    if (auto max = limit_at(dfd.get(), "memory.max"))
      u.memory_available_bytes = *max > *u.memory_working_set_bytes ? *max - *u.memory_working_set_bytes : 0;
  }
  u.swap_usage_bytes = read_uint_at(dfd.get(), "memory.swap.current");
  if (u.swap_usage_bytes)
    if (auto max = limit_at(dfd.get(), "memory.swap.max"))
      u.swap_available_bytes = *max > *u.swap_usage_bytes ? *max - *u.swap_usage_bytes : 0;

  u.process_count = read_uint_at(dfd.get(), "pids.current");
  if (!u.process_count) {
    uint64_t count = 0;
    size_t visited = 0;
    if (count_procs(dfd.get(), 0, count, visited)) u.process_count = count;
  }
  u.oom_events = keyed(read_at(dfd.get(), "memory.events"), "oom_kill");
  return u;
}

std::vector<InterfaceUsage> read_netns_usage(const std::string& netns_path) {
  UniqueFd fd(::open(netns_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));  // never blocks on a FIFO
  if (!fd) {
    if (errno == ENOENT) return {};
    fail_errno("open network namespace {}", netns_path);
  }
  struct statfs sfs;
  if (::fstatfs(fd.get(), &sfs) < 0) fail_errno("statfs {}", netns_path);
  if (static_cast<unsigned long>(sfs.f_type) != static_cast<unsigned long>(NSFS_MAGIC)) return {};  // pin gone

  // setns(2) moves only the calling thread: a thread of its own joins the pod's network
  // namespace, reads its counters (/proc/thread-self/net follows the thread's namespace,
  // /proc/net the process's) and ends; the caller never moves.
  std::vector<InterfaceUsage> out;
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      if (::setns(fd.get(), CLONE_NEWNET) < 0) {
        if (errno == EINVAL) return;  // not a network namespace
        fail_errno("join network namespace {}", netns_path);
      }
      out = parse_net_dev(read_file("/proc/thread-self/net/dev"));
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
  return out;
}

} // namespace berth::cri
