#include "runtime/lib/cgroup_systemd.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/subprocess.hpp"
#include "runtime/lib/cgroup.hpp"
#include "runtime/lib/cgroup_resources.hpp"

namespace berth {

namespace cgroupv2 {

std::string systemd_expand_slice(const std::string& slice) {
  const std::string suffix = ".slice";
  if (slice.size() < suffix.size() || !slice.ends_with(suffix) || slice.find('/') != std::string::npos)
    fail("invalid slice name: {}", slice);
  std::string name = slice.substr(0, slice.size() - suffix.size());
  if (name == "-") return "/";
  std::string path, prefix;
  for (auto& component : split(name, '-', false)) {
    if (component.empty()) fail("invalid slice name: {}", slice); // "a--b.slice", "-a.slice"
    path += "/" + prefix + component + suffix;
    prefix += component + "-";
  }
  return path;
}

SystemdScope systemd_scope_for(const std::string& cgroups_path, const std::string& id) {
  std::string slice, prefix = "berth", name = id;
  if (!cgroups_path.empty()) {
    auto parts = split(cgroups_path, ':', false);
    if (parts.size() != 3)
      fail("expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"{}\" instead",
           cgroups_path);
    slice = parts[0];
    prefix = parts[1];
    if (!parts[2].empty()) name = parts[2];
  }
  if (slice.empty()) slice = "system.slice";
  if (name.ends_with(".slice"))
    fail("linux.cgroupsPath: \"{}\": berth creates a scope for the container, not the slice \"{}\"", cgroups_path,
         name);
  SystemdScope s;
  s.slice = slice;
  s.unit = prefix.empty() ? name + ".scope" : prefix + "-" + name + ".scope";
  std::string dir = systemd_expand_slice(slice);
  s.cgroup = (dir == "/" ? "" : dir) + "/" + s.unit;
  return s;
}

std::string cpu_list_to_mask_hex(const std::string& list) {
  std::vector<uint8_t> bytes;
  auto set = [&](uint64_t bit) {
    if (bit >= 8 * 8192) fail("cpu list \"{}\": {} is too large", list, bit);
    if (bytes.size() <= bit / 8) bytes.resize(bit / 8 + 1);
    bytes[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
  };
  for (auto& raw : split(list, ',')) {
    std::string range(trim(raw));
    if (range.empty()) continue;
    auto dash = range.find('-');
    auto lo = parse_uint(range.substr(0, dash));
    auto hi = dash == std::string::npos ? lo : parse_uint(range.substr(dash + 1));
    if (!lo || !hi || *hi < *lo) fail("cpu list \"{}\": invalid range \"{}\"", list, range);
    for (uint64_t i = *lo; i <= *hi; i++) set(i);
  }
  if (bytes.empty()) fail("cpu list \"{}\": empty value", list);
  std::string hex;
  for (uint8_t b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

std::vector<std::string> systemd_resource_properties(const json& resources) {
  std::vector<std::string> props;
  if (!resources.is_object()) return props;
  JsonView r(resources, "linux.resources");
  auto bytes = [](int64_t v) { return v == -1 ? std::string("infinity") : std::to_string(v); };
  if (auto m = r["memory"]; m.present()) {
    int64_t limit = m.opt_int("limit").value_or(0), swap = m.opt_int("swap").value_or(0);
    if (limit != 0) props.push_back("MemoryMax=t:" + bytes(limit));
    if (int64_t low = m.opt_int("reservation").value_or(0)) props.push_back("MemoryLow=t:" + bytes(low));
    int64_t swap_max = with_context(m["swap"].path(), [&] { return swap_to_v2(swap, limit); });
    if (swap_max != 0) props.push_back("MemorySwapMax=t:" + bytes(swap_max));
  }
  if (auto c = r["cpu"]; c.present()) {
    if (auto shares = c.opt_uint("shares"); shares && *shares)
      props.push_back(fmt::format("CPUWeight=t:{}", shares_to_weight(*shares)));
    int64_t quota = c.opt_int("quota").value_or(0);
    uint64_t period = c.opt_uint("period").value_or(0);
    if (period != 0) props.push_back(fmt::format("CPUQuotaPeriodUSec=t:{}", period));
    if (quota != 0 || period != 0) {
      // systemd keeps whole percents of a CPU: round up to 10 ms per second, as runc.
      std::string per_sec = "infinity";
      if (quota > 0) {
        uint64_t v = static_cast<uint64_t>(quota) * 1000000 / (period ? period : 100000);
        if (v % 10000) v = (v / 10000 + 1) * 10000;
        per_sec = std::to_string(v);
      }
      props.push_back("CPUQuotaPerSecUSec=t:" + per_sec);
    }
    if (auto cpus = c.opt_string("cpus"); cpus && !cpus->empty())
      props.push_back("AllowedCPUs=ay:" + with_context(c["cpus"].path(), [&] { return cpu_list_to_mask_hex(*cpus); }));
    if (auto mems = c.opt_string("mems"); mems && !mems->empty())
      props.push_back("AllowedMemoryNodes=ay:" +
                      with_context(c["mems"].path(), [&] { return cpu_list_to_mask_hex(*mems); }));
  }
  if (auto limit = r["pids"]["limit"]; limit.present()) {
    int64_t n = limit.as_int();
    props.push_back(n > 0 ? fmt::format("TasksMax=t:{}", n) : "TasksMax=t:infinity");
  }
  if (auto w = r["blockIO"]["weight"]; w.present() && w.as_uint() != 0)
    props.push_back(fmt::format("IOWeight=t:{}", blkio_weight_to_io_weight(w.as_uint())));
  return props;
}

std::vector<std::string> systemd_start_arguments(const SystemdScope& scope, const std::string& id, pid_t pid,
                                                 const json& resources) {
  std::vector<std::string> args = {"start-scope", "--unit", scope.unit, "--slice", scope.slice, "--description",
                                   "berth container " + id};
  if (pid > 0) args.insert(args.end(), {"--pid", std::to_string(pid)});
  else args.push_back("--hold");
  // Delegate: the container may manage its own subtree; accounting: stats work (runc).
  for (const char* p : {"Delegate=b:true", "DefaultDependencies=b:false", "MemoryAccounting=b:true",
                        "CPUAccounting=b:true", "IOAccounting=b:true", "TasksAccounting=b:true"})
    args.insert(args.end(), {"--property", p});
  for (auto& p : systemd_resource_properties(resources)) args.insert(args.end(), {"--property", p});
  return args;
}

} // namespace cgroupv2

namespace {

// berth-systemd: $BERTH_SYSTEMD_HELPER, next to berth (installed, or the build tree's
// runtime/systemd/), then PATH.
std::string find_helper() {
  if (const char* env = ::getenv("BERTH_SYSTEMD_HELPER"); env && *env) return env;
  if (std::string dir = executable_dir(); !dir.empty())
    for (const char* rel : {"/berth-systemd", "/systemd/berth-systemd"})
      if (::access((dir + rel).c_str(), X_OK) == 0) return dir + rel;
  for (auto& dir : path_dirs())
    if (::access((dir + "/berth-systemd").c_str(), X_OK) == 0) return dir + "/berth-systemd";
  return "";
}

std::string require_helper() {
  if (!path_exists("/run/systemd/system")) fail("systemd not running on this host, cannot use systemd cgroups manager");
  std::string helper = find_helper();
  if (helper.empty())
    fail("the systemd cgroup driver needs the berth-systemd helper, found neither next to berth nor in PATH");
  return helper;
}

struct Helper {
  pid_t pid = -1;
  UniqueFd in, out, err;
};

// Not common/subprocess's run_command: the helper keeps running (holding the scope
// job) after its first line, which the caller reads while it lives.
Helper spawn(const std::string& helper, const std::vector<std::string>& args) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0)
    fail_errno("pipe");
  Helper h;
  h.in.reset(in[1]);
  h.out.reset(out[0]);
  h.err.reset(err[0]);
  UniqueFd child_in(in[0]), child_out(out[1]), child_err(err[1]);
  std::vector<char*> argv;
  std::string name = "berth-systemd";
  argv.push_back(name.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  h.pid = ::fork();
  if (h.pid < 0) fail_errno("fork {}", helper);
  if (h.pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(child_in.get(), 0);
    ::dup2(child_out.get(), 1);
    ::dup2(child_err.get(), 2);
    ::execv(helper.c_str(), argv.data());
    _exit(127);
  }
  return h;
}

// Reads the helper's stdout (up to the first newline when `first_line`) and stderr.
std::string read_output(Helper& h, bool first_line, std::string& err_text) {
  std::string out;
  bool out_open = true, err_open = !first_line;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? h.out.get() : -1, POLLIN, 0}, {err_open ? h.err.get() : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail_errno("poll");
    }
    char buf[4096];
    for (int i = 0; i < 2; i++) {
      if (!fds[i].revents) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      (i == 0 ? out : err_text).append(buf, static_cast<size_t>(n));
    }
    if (first_line && out.find('\n') != std::string::npos) break;
  }
  return out;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs the helper to completion; fails with its message unless it exits 0.
std::string run_helper(const std::vector<std::string>& args) {
  Helper h = spawn(require_helper(), args);
  h.in.reset();
  std::string err;
  std::string out = read_output(h, false, err);
  int rc = wait_exit(h.pid);
  if (rc != 0) fail("systemd: {}", err.empty() ? fmt::format("berth-systemd exited with {}", rc) : trim(err));
  return out;
}

std::string absolute_cgroup(const std::string& helper_line, const cgroupv2::SystemdScope& scope) {
  std::string cg(trim(helper_line));
  if (cg.empty()) cg = scope.cgroup;
  const std::string& root = cgroup2_root();
  if (root.empty()) fail("no cgroup v2 hierarchy on this host for the systemd scope {}", scope.unit);
  return root + cg;
}

} // namespace

bool systemd_driver_available() { return path_exists("/run/systemd/system") && !find_helper().empty(); }

Cgroup Cgroup::create_systemd(const std::string& cgroups_path, const std::string& id, const json& resources) {
  validate_resources(resources); // config errors before a unit exists
  auto scope = cgroupv2::systemd_scope_for(cgroups_path, id);
  Helper h = spawn(require_helper(), cgroupv2::systemd_start_arguments(scope, id, 0, resources));
  std::string err;
  std::string line = read_output(h, true, err);
  if (line.find('\n') == std::string::npos) {
    h.in.reset();
    read_output(h, false, err);
    int rc = wait_exit(h.pid);
    fail("systemd: {}", err.empty() ? fmt::format("berth-systemd exited with {}", rc) : trim(err));
  }
  Cgroup cg;
  cg.unit_ = scope.unit;
  cg.created_ = true;
  cg.holder_pid_ = h.pid;
  cg.holder_stdin_ = std::move(h.in);
  cg.path_ = absolute_cgroup(line, scope);
  cg.fd_.reset(::open(cg.path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cg.fd_) fail_errno("open cgroup {} of systemd unit {}", cg.path_, scope.unit);
  return cg;
}

std::string systemd_create_scope(const std::string& cgroups_path, const std::string& id, pid_t pid,
                                 const json& resources) {
  if (pid <= 0) fail("systemd_create_scope: no process to put in the scope");
  validate_resources(resources);
  auto scope = cgroupv2::systemd_scope_for(cgroups_path, id);
  std::string out = run_helper(cgroupv2::systemd_start_arguments(scope, id, pid, resources));
  return absolute_cgroup(out.substr(0, out.find('\n')), scope);
}

void systemd_stop_scope(const std::string& unit) { run_helper({"stop", "--unit", unit}); }

void systemd_set_properties(const std::string& unit, const json& resources) {
  std::vector<std::string> args = {"set-properties", "--unit", unit};
  for (auto& p : cgroupv2::systemd_resource_properties(resources)) args.insert(args.end(), {"--property", p});
  if (args.size() > 3) run_helper(args);
}

} // namespace berth
