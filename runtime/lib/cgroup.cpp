#include "runtime/lib/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"

namespace berth {

namespace {

bool is_cgroup2(const char* path) {
  struct statfs fs;
  return ::statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// The calling process's own cgroup v2 path ("0::/a/b" in /proc/self/cgroup).
std::string own_cgroup() {
  auto text = try_read_file("/proc/self/cgroup");
  if (!text) return "/";
  for (auto& line : split(*text, '\n'))
    if (starts_with(line, "0::")) return line.substr(3);
  return "/";
}

std::string normalize(const std::string& p) {
  std::string out;
  for (auto& part : split(p, '/')) {
    if (part == ".") continue;
    if (part == "..") fail("linux.cgroupsPath: \"{}\" must not contain \"..\"", p);
    out += "/" + part;
  }
  return out.empty() ? "/" : out;
}

} // namespace

const std::string& cgroup2_root() {
  static const std::string root = [] {
    if (is_cgroup2("/sys/fs/cgroup")) return std::string("/sys/fs/cgroup");
    if (is_cgroup2("/sys/fs/cgroup/unified")) return std::string("/sys/fs/cgroup/unified");
    return std::string();
  }();
  return root;
}

Cgroup Cgroup::create(const std::string& cgroups_path, const std::string& id) {
  Cgroup cg;
  const std::string& root = cgroup2_root();
  if (root.empty()) {
    log::warn("no cgroup v2 hierarchy on this host; container {} runs in the runtime's cgroup", id);
    return cg;
  }
  if (cgroups_path.find(':') != std::string::npos && cgroups_path[0] != '/')
    fail("linux.cgroupsPath: \"{}\" is a systemd slice:prefix:name path; it needs --systemd-cgroup", cgroups_path);
  std::string rel;
  if (cgroups_path.empty())
    rel = normalize(own_cgroup() + "/" + id);
  else if (cgroups_path[0] == '/')
    rel = normalize(cgroups_path);
  else
    rel = normalize(own_cgroup() + "/" + cgroups_path);
  if (rel == "/") fail("linux.cgroupsPath: \"{}\" resolves to the root cgroup", cgroups_path);
  cg.path_ = root + rel;
  if (::mkdir(cg.path_.c_str(), 0755) == 0) {
    cg.created_ = true;
  } else if (errno == ENOENT) {
    mkdir_p(cg.path_.substr(0, cg.path_.rfind('/')));
    if (::mkdir(cg.path_.c_str(), 0755) < 0 && errno != EEXIST) fail_errno("create cgroup {}", cg.path_);
    cg.created_ = true;
  } else if (errno != EEXIST) {
    fail_errno("create cgroup {}", cg.path_);
  }
  cg.fd_.reset(::open(cg.path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cg.fd_) fail_errno("open cgroup {}", cg.path_);
  return cg;
}

Cgroup::~Cgroup() {
  if (created_ && !committed_ && !path_.empty()) cgroup_destroy(path_);
}

void Cgroup::add_process(pid_t pid) const {
  if (path_.empty()) return;
  with_context(fmt::format("join cgroup {}", path_),
               [&] { write_file(path_ + "/cgroup.procs", std::to_string(pid), false); });
}

std::vector<pid_t> cgroup_pids(const std::string& path) {
  std::vector<pid_t> out;
  auto text = try_read_file(path + "/cgroup.procs");
  if (!text) return out;
  for (auto& line : split(*text, '\n'))
    if (auto v = parse_int(line)) out.push_back(static_cast<pid_t>(*v));
  return out;
}

bool cgroup_frozen(const std::string& path) {
  auto text = try_read_file(path + "/cgroup.freeze");
  return text && trim(*text) == "1";
}

void cgroup_destroy(const std::string& path) {
  if (path.empty()) return;
  for (int attempt = 0; attempt < 200; attempt++) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) {
      log::warn("remove cgroup {}: {}", path, std::strerror(errno));
      return;
    }
    // Still populated: kill what is left (cgroup.kill where the kernel has it).
    int fd = ::open((path + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = ::write(fd, "1", 1);
      (void)n;
      ::close(fd);
    } else {
      for (pid_t p : cgroup_pids(path)) ::kill(p, SIGKILL);
    }
    ::usleep(attempt < 20 ? 1000 : 10000);
  }
  log::warn("remove cgroup {}: still busy", path);
}

void apply_resources(const std::string& path, const json& resources) {
  if (!resources.is_object()) return;
  for (auto it = resources.begin(); it != resources.end(); ++it) {
    const auto& v = it.value();
    if (v.is_null() || (v.is_object() && v.empty()) || (v.is_array() && v.empty())) continue;
    if (it.key() == "devices") continue; // the device allow-list: default-deny is enforced by the rootfs /dev
    log::warn("linux.resources.{}: not applied to cgroup {}: resource limits are not supported by this "
              "build yet",
              it.key(), path.empty() ? "(none)" : path);
  }
}

} // namespace berth
