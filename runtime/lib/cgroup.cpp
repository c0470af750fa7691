#include "runtime/lib/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/cgroup_devices.hpp"
#include "runtime/lib/cgroup_resources.hpp"

namespace berth {

namespace {

// Enabled in every ancestor at creation, so that stats, OOM events and later updates
// work even when the config sets no limit; others are enabled when a limit needs them.
const std::vector<std::string> kAccountingControllers = {"cpu", "io", "memory", "pids"};

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

// The space-separated words of a cgroup file such as cgroup.controllers ({} if absent).
std::set<std::string> words_of(const std::string& file) {
  std::set<std::string> out;
  try {
    if (auto text = try_read_file(file))
      for (auto& w : split(*text, ' '))
        if (auto t = trim(w); !t.empty()) out.insert(std::string(t));
  } catch (const Error&) {
  }
  return out;
}

std::set<std::string> controllers_of(const std::string& dir) { return words_of(dir + "/cgroup.controllers"); }

// Writes `data` in one write(2) (cgroup files take a value per write). Returns 0 or errno.
int write_cgroup_file(const std::string& file, std::string_view data) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  return n < 0 ? errno : 0;
}

// Enables the wanted controllers that `dir` offers and has not enabled for its children.
// Failures are left for the limits to report (e.g. EBUSY: `dir` has processes).
void enable_controllers_in(const std::string& dir, const std::vector<std::string>& wanted) {
  auto offered = controllers_of(dir);
  auto enabled = words_of(dir + "/cgroup.subtree_control");
  std::vector<std::string> add;
  for (auto& c : wanted)
    if (offered.count(c) && !enabled.count(c)) add.push_back("+" + c);
  if (add.empty()) return;
  if (write_cgroup_file(dir + "/cgroup.subtree_control", fmt::format("{}", fmt::join(add, " "))) == 0) return;
  for (auto& c : add)
    if (int err = write_cgroup_file(dir + "/cgroup.subtree_control", c))
      log::debug("enable {} in {}/cgroup.subtree_control: {}", c, dir, std::strerror(err));
}

// Enables `wanted` from the hierarchy root down to the parent of `path`.
void enable_controllers_above(const std::string& path, const std::vector<std::string>& wanted) {
  const std::string& root = cgroup2_root();
  if (wanted.empty() || root.empty() || !starts_with(path, root)) return;
  std::string dir = root;
  auto parts = split(path.substr(root.size()), '/');
  for (size_t i = 0; i + 1 < parts.size(); i++) {
    enable_controllers_in(dir, wanted);
    dir += "/" + parts[i];
  }
  enable_controllers_in(dir, wanted);
}

// Why `controller` is missing from the cgroup's cgroup.controllers, for the warning.
std::string why_unavailable(const std::string& path, const std::string& controller) {
  const std::string& root = cgroup2_root();
  auto offered = controllers_of(root);
  if (!offered.count(controller)) {
    if (offered.empty())
      return fmt::format("this host's cgroup v2 hierarchy ({}) offers no controllers (they are bound to cgroup v1)",
                         root);
    return fmt::format("this host's cgroup v2 hierarchy does not offer the {} controller (it offers: {})", controller,
                       fmt::join(offered, " "));
  }
  std::string parent = path.substr(0, path.rfind('/'));
  return fmt::format("the {} controller is not enabled in {}/cgroup.subtree_control (a parent cgroup with "
                     "processes cannot enable controllers for its children)",
                     controller, parent);
}

void apply_devices(const std::string& path, const std::optional<std::vector<cgroupv2::DeviceRule>>& requested,
                   bool strict) {
  std::vector<cgroupv2::DeviceRule> rules = requested.value_or(std::vector<cgroupv2::DeviceRule>{});
  auto& defaults = cgroupv2::default_device_rules();
  rules.insert(rules.end(), defaults.begin(), defaults.end());
  auto program = cgroupv2::device_filter_program(rules);
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) fail_errno("open cgroup {}", path);
  try {
    cgroupv2::attach_device_filter(dir.get(), program);
  } catch (const Error& e) {
    bool host_cannot = e.code() == ENOSYS || (e.code() == EPERM && (::geteuid() != 0 || in_user_namespace()));
    if (strict || !host_cannot) {
      Error wrapped = e;
      wrapped.wrap("linux.resources.devices");
      throw wrapped;
    }
    // As runc: without bpf(2) (rootless, user namespaces) devices are not filtered.
    if (requested) log::warn("linux.resources.devices: not enforced: {}", e.what());
    else log::debug("default device rules not enforced: {}", e.what());
  }
}

std::string files_of(const cgroupv2::CgroupWrite& w) {
  std::vector<std::string> names;
  for (auto& f : w.files) names.push_back(f.file);
  return fmt::format("{}", fmt::join(names, " or "));
}

// A limit the host cannot enforce: which field, through which controller, and why.
struct Unenforced {
  std::string field;
  std::string controller; // "" for the core cgroup.* files
  std::string why;
};

// Writes the plan. What the host cannot do is an error with `strict` (update), else it
// is collected in `skipped` (one entry per field) for the caller to decide.
void execute_plan(const std::string& path, const cgroupv2::ResourcePlan& plan, bool strict,
                  std::vector<Unenforced>* skipped = nullptr) {
  auto available = controllers_of(path);
  std::set<std::string> reported;
  auto cannot = [&](const cgroupv2::CgroupWrite& w, const std::string& why) {
    if (strict || !skipped) fail("{}: cannot be set: {}", w.field, why);
    if (reported.insert(w.field).second) skipped->push_back({w.field, w.controller, why});
  };
  // Returns 0, ENOENT when none of the files exists, or the write's errno.
  auto write_one = [&](const cgroupv2::CgroupWrite& w) -> std::pair<int, const cgroupv2::FileChoice*> {
    for (auto& choice : w.files) {
      int err = write_cgroup_file(path + "/" + choice.file, choice.value);
      if (err != ENOENT) return {err, &choice};
    }
    return {ENOENT, nullptr};
  };
  std::vector<const cgroupv2::CgroupWrite*> retry;
  for (auto& w : plan.writes) {
    if (!w.controller.empty() && !available.count(w.controller)) {
      cannot(w, why_unavailable(path, w.controller));
      continue;
    }
    auto [err, choice] = write_one(w);
    if (err == ENOENT) {
      if (!w.quiet_if_missing) cannot(w, fmt::format("{} does not exist in {} (not supported by this kernel)",
                                                    files_of(w), path));
      continue;
    }
    if (err == EINVAL && w.retry_after_others) {
      retry.push_back(&w);
      continue;
    }
    if (err) fail_code(err, "{}: write \"{}\" to {}/{}", w.field, choice->value, path, choice->file);
  }
  for (auto* w : retry) {
    auto [err, choice] = write_one(*w);
    if (err) fail_code(err, "{}: write \"{}\" to {}/{}", w->field, choice ? choice->value : "", path,
                       choice ? choice->file : files_of(*w));
  }
}

std::optional<int64_t> read_limit(const std::string& file) {
  auto text = try_read_file(file);
  if (!text) return std::nullopt;
  auto t = trim(*text);
  if (t == "max") return -1;
  return parse_int(t);
}

cgroupv2::LiveLimits read_live(const std::string& path) {
  cgroupv2::LiveLimits live;
  live.memory_max = read_limit(path + "/memory.max").value_or(0);
  live.swap_max = read_limit(path + "/memory.swap.max").value_or(0);
  if (auto text = try_read_file(path + "/cpu.max")) {
    auto f = split(std::string(trim(*text)), ' ');
    if (f.size() == 2) {
      live.cpu_quota = f[0] == "max" ? std::optional<int64_t>(-1) : parse_int(f[0]);
      live.cpu_period = parse_uint(f[1]);
    }
  }
  return live;
}

// runc's CheckMemoryUsage: a limit at or below the current usage would OOM-kill at once.
void check_memory_usage(const std::string& path, const cgroupv2::ResourcePlan& plan) {
  if (!plan.check_before_update || (plan.checked_memory <= 0 && plan.checked_memory_swap <= 0)) return;
  auto usage = read_limit(path + "/memory.current");
  if (!usage || *usage < 0) return;
  auto u = static_cast<uint64_t>(*usage);
  if (plan.checked_memory_swap > 0 && static_cast<uint64_t>(plan.checked_memory_swap) <= u)
    fail("rejecting memory+swap limit {} <= usage {}", plan.checked_memory_swap, u);
  if (plan.checked_memory > 0 && static_cast<uint64_t>(plan.checked_memory) <= u)
    fail("rejecting memory limit {} <= usage {}", plan.checked_memory, u);
}

// Every cgroup directory of the subtree, children before their parent.
void subtree_post_order(const std::string& dir, std::vector<std::string>& out) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_type != DT_DIR || std::string_view(e->d_name) == "." || std::string_view(e->d_name) == "..") continue;
      subtree_post_order(dir + "/" + e->d_name, out);
    }
    ::closedir(d);
  }
  out.push_back(dir);
}

} // namespace

bool in_user_namespace() {
  auto map = try_read_file("/proc/self/uid_map");
  if (!map) return false;
  auto fields = split(*map, ' ');
  return !(fields.size() >= 3 && fields[0] == "0" && fields[1] == "0" && trim(fields[2]) == "4294967295");
}

const std::string& cgroup2_root() {
  static const std::string root = [] {
    if (is_cgroup2("/sys/fs/cgroup")) return std::string("/sys/fs/cgroup");
    if (is_cgroup2("/sys/fs/cgroup/unified")) return std::string("/sys/fs/cgroup/unified");
    return std::string();
  }();
  return root;
}

std::string cgroup_resolve_path(const std::string& cgroups_path, const std::string& id,
                                const std::string& own_cgroup) {
  std::string inner = cgroups_path.empty() ? id : cgroups_path;
  std::vector<std::string> parts;
  auto push = [&](const std::string& p) {
    for (auto& part : split(p, '/')) {
      if (part == ".") continue;
      if (part == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.push_back(part);
    }
  };
  if (inner[0] != '/') {
    // runc: under the parent of the runtime's own cgroup.
    push(own_cgroup);
    if (!parts.empty()) parts.pop_back();
    std::vector<std::string> base = parts;
    parts.clear();
    push(inner); // cleaned on its own, like runc's CleanPath, so ".." cannot climb out
    base.insert(base.end(), parts.begin(), parts.end());
    parts = base;
  } else {
    push(inner);
  }
  std::string out;
  for (auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
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
  std::string rel = cgroup_resolve_path(cgroups_path, id, own_cgroup());
  if (rel == "/") fail("linux.cgroupsPath: \"{}\" resolves to the root cgroup", cgroups_path);
  std::vector<std::string> made;
  try {
    std::string dir = root;
    for (auto& part : split(rel, '/')) {
      enable_controllers_in(dir, kAccountingControllers);
      dir += "/" + part;
      if (::mkdir(dir.c_str(), 0755) == 0) made.push_back(dir);
      else if (errno != EEXIST) fail_errno("create cgroup {}", dir);
    }
    cg.path_ = dir;
    cg.created_ = !made.empty() && made.back() == dir;
    cg.fd_.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!cg.fd_) fail_errno("open cgroup {}", dir);
  } catch (...) {
    cg.created_ = false;
    for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
    throw;
  }
  return cg;
}

Cgroup::Cgroup() = default;

Cgroup::Cgroup(Cgroup&& other) noexcept { *this = std::move(other); }

Cgroup& Cgroup::operator=(Cgroup&& other) noexcept {
  if (this == &other) return *this;
  reset();
  path_ = std::exchange(other.path_, {});
  fd_ = std::move(other.fd_);
  created_ = std::exchange(other.created_, false);
  committed_ = std::exchange(other.committed_, false);
  unit_ = std::exchange(other.unit_, {});
  holder_pid_ = std::exchange(other.holder_pid_, -1);
  holder_stdin_ = std::move(other.holder_stdin_);
  return *this;
}

Cgroup::~Cgroup() { reset(); }

void Cgroup::reset() noexcept {
  try {
    release_placeholder();
    if (created_ && !committed_ && !path_.empty()) cgroup_destroy(path_, !unit_.empty());
  } catch (const std::exception& e) {
    log::warn("remove cgroup {}: {}", path_, e.what());
  }
  path_.clear();
  unit_.clear();
  fd_.reset();
  created_ = committed_ = false;
}

void Cgroup::add_process(pid_t pid) const {
  if (path_.empty()) return;
  with_context(fmt::format("join cgroup {}", path_),
               [&] { write_file(path_ + "/cgroup.procs", std::to_string(pid), false); });
}

void Cgroup::release_placeholder() {
  if (holder_pid_ <= 0) return;
  // A signal, not just EOF on its stdin: the init (a fork of berth that has not exec'd
  // yet) holds a copy of the pipe's write end.
  holder_stdin_.reset();
  ::kill(holder_pid_, SIGTERM);
  while (::waitpid(holder_pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  holder_pid_ = -1;
}

void Cgroup::commit() {
  release_placeholder();
  committed_ = true;
}

std::vector<pid_t> cgroup_pids(const std::string& path) {
  std::vector<pid_t> out;
  std::vector<std::string> dirs;
  subtree_post_order(path, dirs);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    std::optional<std::string> text;
    try {
      text = try_read_file(*it + "/cgroup.procs");
    } catch (const Error&) {
      continue; // removed meanwhile, or a threaded cgroup
    }
    if (!text) continue;
    for (auto& line : split(*text, '\n'))
      if (auto v = parse_int(line)) out.push_back(static_cast<pid_t>(*v));
  }
  return out;
}

bool cgroup_frozen(const std::string& path) {
  auto text = try_read_file(path + "/cgroup.freeze");
  return text && trim(*text) == "1";
}

void cgroup_freeze(const std::string& path, bool frozen) {
  std::string freeze = path + "/cgroup.freeze", events = path + "/cgroup.events";
  if (::access(freeze.c_str(), F_OK) < 0) {
    if (errno == ENOENT && path_exists(path)) fail("freezer not supported: {} does not exist (Linux 5.2+)", freeze);
    fail_errno("cgroup {}", path);
  }
  // cgroup.events changes (a kernfs notification) when the frozen state flips.
  UniqueFd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (watch) ::inotify_add_watch(watch.get(), events.c_str(), IN_MODIFY);
  if (int err = write_cgroup_file(freeze, frozen ? "1" : "0"))
    fail_code(err, "write \"{}\" to {}", frozen ? 1 : 0, freeze);
  std::string want = frozen ? "frozen 1" : "frozen 0";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto text = try_read_file(events);
    if (!text) fail("cgroup {} disappeared", path);
    for (auto& line : split(*text, '\n'))
      if (trim(line) == want) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    // Poll at most 100 ms at a time: a safety net should a notification be missed.
    pollfd p{watch.get(), POLLIN, 0};
    ::poll(&p, watch ? 1 : 0, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    char buf[4096];
    while (watch && ::read(watch.get(), buf, sizeof buf) > 0) {
    }
  }
  if (frozen) write_cgroup_file(freeze, "0"); // do not leave it half frozen
  fail("timed out after 10s waiting for cgroup {} to {}", path, frozen ? "freeze" : "thaw");
}

bool cgroup_kill(const std::string& path) {
  int err = write_cgroup_file(path + "/cgroup.kill", "1");
  if (err == ENOENT) return false;
  if (err) fail_code(err, "write 1 to {}/cgroup.kill", path);
  return true;
}

uint64_t cgroup_oom_kills(const std::string& path) {
  std::optional<std::string> text;
  try {
    text = try_read_file(path + "/memory.events");
  } catch (const Error&) {
    return 0;
  }
  if (!text) return 0;
  for (auto& line : split(*text, '\n')) {
    auto f = split(line, ' ');
    if (f.size() == 2 && f[0] == "oom_kill") return parse_uint(trim(f[1])).value_or(0);
  }
  return 0;
}

void cgroup_destroy(const std::string& path, bool systemd_scope) {
  if (path.empty()) return;
  for (int attempt = 0; attempt < 200; attempt++) {
    std::vector<std::string> dirs;
    subtree_post_order(path, dirs);
    bool busy = false;
    for (auto& d : dirs) {
      if (::rmdir(d.c_str()) == 0 || errno == ENOENT) continue;
      if (errno != EBUSY) {
        log::warn("remove cgroup {}: {}", d, std::strerror(errno));
        return;
      }
      busy = true;
      break;
    }
    if (!busy) break;
    // Still populated: kill what is left (cgroup.kill where the kernel has it).
    if (!cgroup_kill(path))
      for (pid_t p : cgroup_pids(path)) ::kill(p, SIGKILL);
    ::usleep(attempt < 20 ? 1000 : 10000);
    if (attempt == 199) log::warn("remove cgroup {}: still busy", path);
  }
  if (systemd_scope) {
    std::string unit = path.substr(path.rfind('/') + 1);
    try {
      systemd_stop_scope(unit);
    } catch (const Error& e) {
      log::warn("stop systemd unit {}: {}", unit, e.what());
    }
  }
}

void validate_resources(const json& resources) { cgroupv2::plan_resources(resources, "linux.resources"); }

std::string cgroup_mode_description() {
  const std::string& root = cgroup2_root();
  if (root.empty()) return "legacy (cgroup v1 only, no cgroup v2 hierarchy)";
  if (root == "/sys/fs/cgroup") return "unified (cgroup v2 at /sys/fs/cgroup)";
  return fmt::format("hybrid (cgroup v2 at {}, the resource controllers on cgroup v1)", root);
}

namespace {

// One error for everything that cannot be enforced, grouped by controller:
// "... the memory controller (linux.resources.memory.limit, ...): <why>; ...".
[[noreturn]] void fail_unenforced(const std::vector<Unenforced>& skipped) {
  std::vector<std::string> order;
  std::map<std::string, std::pair<std::vector<std::string>, std::string>> by_controller;
  for (auto& u : skipped) {
    std::string name = u.controller.empty() ? "cgroup core" : u.controller;
    auto [it, fresh] = by_controller.try_emplace(name, std::vector<std::string>{}, u.why);
    if (fresh) order.push_back(name);
    it->second.first.push_back(u.field);
  }
  std::vector<std::string> parts;
  for (auto& name : order) {
    auto& [fields, why] = by_controller[name];
    parts.push_back(fmt::format("{} ({}): {}", name, fmt::join(fields, ", "), why));
  }
  fail("linux.resources: this host cannot enforce the {} limits: {}; the host's cgroup mode is {}; to run the "
       "container without these limits, pass --allow-unenforced-limits or set BERTH_ALLOW_UNENFORCED_LIMITS=1",
       fmt::join(order, ", "), fmt::join(parts, "; "), cgroup_mode_description());
}

void enforce_or_warn(const std::vector<Unenforced>& skipped, const LimitsPolicy& policy) {
  if (skipped.empty()) return;
  if (!policy.allow_unenforced) fail_unenforced(skipped);
  for (auto& u : skipped) log::warn("{}: not applied: {}", u.field, u.why);
}

} // namespace

void apply_resources(const std::string& path, const json& resources, const LimitsPolicy& policy) {
  auto plan = cgroupv2::plan_resources(resources, "linux.resources");
  for (auto& w : plan.warnings) log::warn("{}", w);
  std::vector<Unenforced> skipped;
  if (path.empty()) {
    std::string why = "the container has no cgroup";
    if (!policy.no_cgroup_reason.empty()) why += " (" + policy.no_cgroup_reason + ")";
    std::set<std::string> fields;
    for (auto& w : plan.writes)
      if (fields.insert(w.field).second) skipped.push_back({w.field, w.controller, why});
    enforce_or_warn(skipped, policy);
    // Rootless containers cannot filter devices anyway (runc ignores the rules silently).
    if (plan.devices && ::geteuid() == 0) log::warn("linux.resources.devices: not applied: {}", why);
    return;
  }
  enable_controllers_above(path, plan.controllers);
  execute_plan(path, plan, false, &skipped);
  enforce_or_warn(skipped, policy);
  apply_devices(path, plan.devices, false);
}

void update_resources(const std::string& path, const json& resources, const std::string& systemd_unit) {
  if (path.empty()) fail("the container has no cgroup to update");
  auto live = read_live(path);
  auto plan = cgroupv2::plan_resources(resources, "resources", &live);
  for (auto& w : plan.warnings) log::warn("{}", w);
  check_memory_usage(path, plan);
  if (!systemd_unit.empty()) {
    // systemd gets the merged values: a lone --memory-swap or --cpu-quota means nothing
    // without the live half.
    json merged = resources;
    if (plan.effective_memory) {
      merged["memory"]["limit"] = plan.effective_memory->first;
      merged["memory"]["swap"] = plan.effective_memory->second;
    }
    if (plan.effective_cpu_max) {
      merged["cpu"]["quota"] = plan.effective_cpu_max->first;
      merged["cpu"]["period"] = plan.effective_cpu_max->second;
    }
    systemd_set_properties(systemd_unit, merged);
  }
  enable_controllers_above(path, plan.controllers);
  execute_plan(path, plan, true);
  if (plan.devices) apply_devices(path, plan.devices, true);
}

} // namespace berth
