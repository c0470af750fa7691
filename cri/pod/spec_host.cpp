// live_host_access(): the host facts the spec builder reads, from the running system,
// as containerd reads them (pkg/cap, pkg/os, oci/utils_unix.go, the mount lookup of
// pkg/cri/opts).
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <memory>
#include <set>

#include "common/fd.hpp"
#include "common/fs.hpp"
#include "cri/pod/spec_internal.hpp"

namespace berth::cri {
namespace {

std::vector<std::string> effective_capabilities() {
  std::string status = read_file("/proc/self/status");
  auto pos = status.find("\nCapEff:");
  if (pos == std::string::npos) fail("/proc/self/status: no CapEff line");
  auto mask = parse_uint(trim(std::string_view(status).substr(pos + 8, status.find('\n', pos + 1) - pos - 8)), 16);
  if (!mask) fail("/proc/self/status: CapEff is not a hexadecimal mask");
  std::vector<std::string> out;
  for (int c = 0; c <= spec::last_known_capability(); c++)
    if (*mask & (uint64_t{1} << c)) out.emplace_back(spec::capability_name(c));
  return out;
}

int own_oom_score_adj() {
  auto v = parse_int(trim(read_file("/proc/self/oom_score_adj")));
  if (!v) fail("/proc/self/oom_score_adj: not a number");
  return static_cast<int>(*v);
}

std::string node_hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) < 0) fail_errno("gethostname");
  return name;
}

std::string real_path(const std::string& path) {
  std::unique_ptr<char, decltype(&::free)> resolved(::realpath(path.c_str(), nullptr), &::free);
  if (!resolved) fail_errno("resolve {}", path);
  return resolved.get();
}

// containerd creates a missing host path as a directory before binding it.
std::string prepare_bind_source(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) {
    if (errno != ENOENT) fail_errno("stat {}", path);
    mkdir_p(path, 0755);
  }
  return real_path(path);
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; j++) {
        if (s[i + j] < '0' || s[i + j] > '7') octal = false;
        else v = v * 8 + (s[i + j] - '0');
      }
      if (octal) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// The propagation of the mount that holds path: the last (topmost) mount whose mount
// point is the longest prefix of it, as containerd's lookupMount.
std::string mount_propagation(const std::string& path) {
  std::string best_point, best = "private";
  bool found = false;
  for (const auto& line : split(read_file("/proc/self/mountinfo"), '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 7) continue;
    std::string point = unescape(fields[4]);
    bool holds = point == "/" || path == point || (path.size() > point.size() && path.rfind(point, 0) == 0 &&
                                                   path[point.size()] == '/');
    if (!holds || point.size() < best_point.size()) continue;
    best_point = point;
    found = true;
    best = "private";
    for (size_t i = 6; i < fields.size() && fields[i] != "-"; i++) {
      if (fields[i].rfind("shared:", 0) == 0) best = "shared";
      else if (fields[i].rfind("master:", 0) == 0 && best != "shared") best = "slave";
    }
  }
  if (!found) fail("no mount holds {}", path);
  return best;
}

std::optional<HostDevice> device_node(const std::string& path, const struct stat& st) {
  char type = S_ISCHR(st.st_mode) ? 'c' : S_ISBLK(st.st_mode) ? 'b' : 0;
  if (!type) return std::nullopt;
  return HostDevice{path, "", type, major(st.st_rdev), minor(st.st_rdev), st.st_mode & 0777, st.st_uid, st.st_gid};
}

// containerd's getDevices: subdirectories recursively, except the ones that hold no
// device nodes of the host's own (pts, shm, mqueue, fd) or belong to other managers.
void walk_devices(const std::string& dir, const std::string& relative, std::vector<HostDevice>& out) {
  struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> d(::opendir(dir.c_str()));
  if (!d) fail_errno("open directory {}", dir);
  while (struct dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "console") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) {
      if (errno == ENOENT) continue;  // gone since readdir
      fail_errno("stat {}", path);
    }
    if (S_ISDIR(st.st_mode)) {
      static const std::set<std::string> skipped = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"};
      if (!skipped.count(name)) walk_devices(path, relative + "/" + name, out);
    } else if (auto dev = device_node(path, st)) {
      dev->relative = relative + "/" + name;
      out.push_back(std::move(*dev));
    }
  }
}

std::vector<HostDevice> devices_at(const std::string& path) {
  std::string resolved = real_path(path);
  struct stat st;
  if (::stat(resolved.c_str(), &st) < 0) fail_errno("stat {}", resolved);
  std::vector<HostDevice> out;
  if (S_ISDIR(st.st_mode)) {
    walk_devices(resolved == "/" ? "" : resolved, "", out);
    return out;
  }
  auto dev = device_node(resolved, st);
  if (!dev) spec::invalid("{} is not a character or block device", path);
  out.push_back(std::move(*dev));
  return out;
}

bool apparmor_enabled() {
  struct stat st;
  if (::stat("/sys/kernel/security/apparmor", &st) < 0) return false;
  auto enabled = try_read_file("/sys/module/apparmor/parameters/enabled");
  return enabled && !enabled->empty() && (*enabled)[0] == 'Y';
}

bool apparmor_profile_loaded(const std::string& profile) {
  auto profiles = try_read_file("/sys/kernel/security/apparmor/profiles");
  if (!profiles) return false;
  for (const auto& line : split(*profiles, '\n'))
    if (line.rfind(profile + " (", 0) == 0) return true;
  return false;
}

} // namespace

HostAccess live_host_access() {
  HostAccess h;
  h.capabilities = effective_capabilities;
  h.oom_score_adj = own_oom_score_adj;
  h.hostname = node_hostname;
  h.prepare_bind_source = prepare_bind_source;
  h.mount_propagation = mount_propagation;
  h.devices_at = devices_at;
  h.apparmor_enabled = apparmor_enabled;
  h.apparmor_profile_loaded = apparmor_profile_loaded;
  return h;
}

} // namespace berth::cri
