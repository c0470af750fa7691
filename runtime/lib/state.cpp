#include "runtime/lib/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/cgroup.hpp"

namespace berth {

const char* status_name(Status s) {
  switch (s) {
  case Status::creating: return "creating";
  case Status::created: return "created";
  case Status::running: return "running";
  case Status::paused: return "paused";
  case Status::stopped: return "stopped";
  }
  return "unknown";
}

json ContainerState::to_json() const {
  json j = {{"id", id},
            {"pid", pid},
            {"pid_start_time", pid_start_time},
            {"bundle", bundle},
            {"rootfs", rootfs},
            {"created", created},
            {"owner", owner},
            {"cgroup_path", cgroup_path},
            {"systemd_cgroup", systemd_cgroup},
            {"annotations", annotations},
            {"oci_version", oci_version},
            {"config", config}};
  return j;
}

ContainerState ContainerState::from_json(const json& j) {
  ContainerState s;
  s.id = j.value("id", "");
  s.pid = j.value("pid", 0);
  s.pid_start_time = j.value("pid_start_time", 0ULL);
  s.bundle = j.value("bundle", "");
  s.rootfs = j.value("rootfs", "");
  s.created = j.value("created", "");
  s.owner = j.value("owner", "");
  s.cgroup_path = j.value("cgroup_path", "");
  s.systemd_cgroup = j.value("systemd_cgroup", false);
  if (j.contains("annotations") && j["annotations"].is_object())
    s.annotations = j["annotations"].get<std::map<std::string, std::string>>();
  s.oci_version = j.value("oci_version", "");
  if (j.contains("config")) s.config = j["config"];
  return s;
}

nlohmann::ordered_json oci_state(const ContainerState& s, Status status) {
  nlohmann::ordered_json j = {{"ociVersion", s.oci_version.empty() ? "1.2.0" : s.oci_version},
            {"id", s.id},
            {"pid", status == Status::stopped ? 0 : s.pid},
            {"status", status_name(status)},
            {"bundle", s.bundle},
            {"rootfs", s.rootfs},
            {"created", s.created},
            {"owner", s.owner}};
  if (!s.annotations.empty()) j["annotations"] = s.annotations;
  return j;
}

void validate_container_id(const std::string& id) {
  if (id.empty()) fail("container id cannot be empty");
  if (id == "." || id == "..") fail("invalid container id: {}", id);
  for (unsigned char c : id)
    if (!(std::isalnum(c) || c == '_' || c == '+' || c == '-' || c == '.'))
      fail("invalid container id format: {}", id);
  if (id.size() > 1024) fail("invalid container id: longer than 1024 characters");
}

namespace {
void remove_tree_at(int dirfd) {
  DIR* d = ::fdopendir(::dup(dirfd));
  if (!d) return;
  ::rewinddir(d);
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (::unlinkat(dirfd, name.c_str(), 0) == 0) continue;
    if (errno == EISDIR) {
      int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        remove_tree_at(sub);
        ::close(sub);
      }
      ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
    }
  }
  ::closedir(d);
}
} // namespace

StateDir StateDir::create(const std::string& root, const std::string& id) {
  validate_container_id(id);
  if (::mkdir(root.c_str(), 0711) < 0 && errno != EEXIST) {
    if (errno != ENOENT) fail_errno("create state root {}", root);
    mkdir_p(root, 0711);
  }
  std::string path = path_join(root, id);
  if (::mkdir(path.c_str(), 0711) < 0) {
    if (errno == EEXIST) fail("container with id exists: {}", id);
    fail_errno("create state directory {}", path);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    int e = errno;
    ::rmdir(path.c_str());
    fail_code(e, "open state directory {}", path);
  }
  ::flock(fd.get(), LOCK_EX);
  return StateDir(path, std::move(fd), true);
}

std::optional<StateDir> StateDir::try_open(const std::string& root, const std::string& id, Lock lock) {
  validate_container_id(id);
  std::string path = path_join(root, id);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    fail_errno("open state directory {}", path);
  }
  if (lock == Lock::exclusive && ::flock(fd.get(), LOCK_EX) < 0) fail_errno("lock {}", path);
  // A concurrent delete may have removed the directory while we waited for the lock.
  struct stat st;
  if (::fstatat(fd.get(), "state.json", &st, 0) < 0) {
    if (errno == ENOENT) return std::nullopt;
    fail_errno("stat {}/state.json", path);
  }
  return StateDir(path, std::move(fd), false);
}

StateDir StateDir::open(const std::string& root, const std::string& id, Lock lock) {
  auto d = try_open(root, id, lock);
  if (!d) fail("container does not exist");
  return std::move(*d);
}

void StateDir::lock() {
  if (::flock(fd_.get(), LOCK_EX) < 0) fail_errno("lock {}", path_);
}

void StateDir::unlock() { ::flock(fd_.get(), LOCK_UN); }

ContainerState StateDir::load() const {
  std::string text = read_file_at(fd_.get(), "state.json");
  try {
    return ContainerState::from_json(json::parse(text));
  } catch (const json::exception& e) {
    fail("{}/state.json is corrupt: {}", path_, e.what());
  }
}

void StateDir::save(const ContainerState& s) const {
  write_file_atomic(path_ + "/state.json", s.to_json().dump(), 0600, /*durable=*/false);
}

void StateDir::remove() {
  if (!fd_) return;
  remove_tree_at(fd_.get());
  ::rmdir(path_.c_str());
  fd_.reset();
}

StateDir::StateDir(StateDir&& o) noexcept
    : path_(std::move(o.path_)), fd_(std::move(o.fd_)), fresh_(o.fresh_), committed_(o.committed_) {
  o.fresh_ = false;
}

StateDir::~StateDir() {
  if (fresh_ && !committed_) remove();
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  auto text = try_read_file(fmt::format("/proc/{}/stat", pid));
  if (!text) return std::nullopt;
  // The command name may contain spaces and parentheses: parse after the last ')'.
  auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  auto fields = split(std::string_view(*text).substr(close + 2), ' ');
  // fields[0] is field 3 (state); start time is field 22.
  if (fields.size() < 20) return std::nullopt;
  ProcStat st;
  st.state = fields[0].empty() ? 0 : fields[0][0];
  st.start_time = parse_uint(fields[19]).value_or(0);
  st.flags = static_cast<unsigned long>(parse_uint(fields[6]).value_or(0));
  return st;
}

bool init_alive(const ContainerState& s) {
  if (s.pid <= 0) return false;
  auto st = read_proc_stat(s.pid);
  if (!st) return false;
  if (s.pid_start_time && st->start_time != s.pid_start_time) return false;
  return st->state != 'Z' && st->state != 'X';
}

Status current_status(const StateDir& dir, const ContainerState& s) {
  if (!init_alive(s)) return Status::stopped;
  struct stat st;
  if (::fstatat(dir.fd(), "exec.fifo", &st, 0) == 0) return Status::created;
  if (!s.cgroup_path.empty() && cgroup_frozen(s.cgroup_path)) return Status::paused;
  return Status::running;
}

std::string default_state_root() {
  if (::geteuid() != 0) {
    const char* xdg = ::getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg) return path_join(xdg, "berth");
  }
  return "/run/berth";
}

} // namespace berth
