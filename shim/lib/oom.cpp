#include "shim/lib/oom.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::shim {

std::optional<uint64_t> parse_oom_kill(std::string_view text) {
  for (auto& line : split(text, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() == 2 && fields[0] == "oom_kill") return parse_uint(fields[1]);
  }
  return std::nullopt;
}

namespace {

struct CgroupMount {
  std::string mount_point, root;
};

// The cgroup2 mount, or the v1 mount whose super options hold `controller`.
std::optional<CgroupMount> find_cgroup_mount(bool v2, std::string_view controller) {
  auto text = try_read_file("/proc/self/mountinfo");
  if (!text) return std::nullopt;
  for (auto& line : split(*text, '\n')) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto pre = split(std::string_view(line).substr(0, dash), ' ');
    auto post = split(std::string_view(line).substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3) continue;
    if (v2 && post[0] == "cgroup2") return CgroupMount{pre[4], pre[3]};
    if (!v2 && post[0] == "cgroup") {
      for (auto& opt : split(post[2], ','))
        if (opt == controller) return CgroupMount{pre[4], pre[3]};
    }
  }
  return std::nullopt;
}

// The path of a cgroup (as /proc/<pid>/cgroup shows it) under a mount of that hierarchy.
std::string under_mount(const CgroupMount& m, const std::string& cgroup) {
  std::string rel = cgroup;
  if (m.root != "/" && starts_with(rel, m.root)) rel = rel.substr(m.root.size());
  return path_join(m.mount_point, rel);
}

} // namespace

std::string find_oom_counter_file(pid_t pid) {
  auto text = try_read_file(fmt::format("/proc/{}/cgroup", pid));
  if (!text) return {};
  std::string v2_path, v1_memory_path;
  for (auto& line : split(*text, '\n')) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    auto controllers = std::string_view(line).substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) v2_path = path;
    for (auto& c : split(controllers, ','))
      if (c == "memory") v1_memory_path = path;
  }
  if (!v2_path.empty()) {
    if (auto m = find_cgroup_mount(true, {})) {
      auto file = path_join(under_mount(*m, v2_path), "memory.events");
      if (path_exists(file)) return file;
    }
  }
  if (!v1_memory_path.empty()) {
    if (auto m = find_cgroup_mount(false, "memory")) {
      auto file = path_join(under_mount(*m, v1_memory_path), "memory.oom_control");
      if (path_exists(file)) return file;
    }
  }
  return {};
}

OomWatch::OomWatch(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  if (auto text = try_read_file(path_)) baseline_ = last_ = parse_oom_kill(*text).value_or(0);
  // cgroup v1 control files never signal inotify; memory.events (and a test's fake
  // file) do.
  static constexpr std::string_view kV1 = "memory.oom_control";
  if (path_.size() >= kV1.size() && path_.compare(path_.size() - kV1.size(), kV1.size(), kV1) == 0) return;
  inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (inotify_ && ::inotify_add_watch(inotify_.get(), path_.c_str(), IN_MODIFY | IN_CLOSE_WRITE) < 0)
    inotify_.reset();
}

void OomWatch::refresh() {
  if (inotify_) {
    alignas(struct inotify_event) char buf[4096];
    while (::read(inotify_.get(), buf, sizeof buf) > 0) {}
  }
  if (path_.empty()) return;
  try {
    if (auto text = try_read_file(path_)) {
      if (auto n = parse_oom_kill(*text)) last_ = std::max(last_, *n);
    }
  } catch (const Error&) {
    // The cgroup was removed (ENODEV and friends): keep the last count.
  }
}

} // namespace berth::shim
