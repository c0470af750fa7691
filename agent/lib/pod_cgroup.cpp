#include "agent/lib/pod_cgroup.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "agent/lib/cri_convert.hpp"
#include "agent/lib/log.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/subprocess.hpp"

namespace berth::agent {
namespace {

constexpr const char* kCgroupMount = "/sys/fs/cgroup";
constexpr const char* kQosDirs[] = {"", "burstable", "besteffort"};

bool pure_cgroup_v2() {
  struct statfs fs;
  return ::statfs(kCgroupMount, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

const char* qos_dir(const Pod& pod) {
  auto qos = qos_class(pod.spec);
  return qos == "Burstable" ? "burstable" : qos == "BestEffort" ? "besteffort" : "";
}

// The slice of a pod, from its path components below the root (systemd's naming: each
// component's '-' becomes '_', components joined with '-').
std::string pod_slice(const Config& cfg, const char* qos, const std::string& uid) {
  std::vector<std::string> parts;
  if (cfg.cgroup_root != "/") {
    std::string root = cfg.cgroup_root.substr(1, cfg.cgroup_root.size() - 1 - std::string_view(".slice").size());
    parts.push_back(root);  // already a slice name: not escaped again
  }
  parts.push_back("kubepods");
  if (*qos) parts.push_back(qos);
  std::string pod = "pod" + uid;
  std::replace(pod.begin(), pod.end(), '-', '_');
  parts.push_back(pod);
  return fmt::format("{}.slice", fmt::join(parts, "-"));
}

std::string pod_dir(const Config& cfg, const char* qos, const std::string& uid) {
  std::string base = path_join(cfg.cgroup_root, "kubepods");
  if (*qos) base = path_join(base, qos);
  return path_join(base, "pod" + uid);
}

// $BERTH_SYSTEMD_HELPER, next to berthlet (installed in one sbindir), the build tree's
// runtime/systemd/, then PATH.
std::string systemd_helper() {
  if (const char* env = ::getenv("BERTH_SYSTEMD_HELPER"); env && *env) return env;
  std::vector<std::string> dirs;
  if (std::string dir = executable_dir(); !dir.empty()) dirs = {dir, dir + "/../runtime/systemd"};
  for (auto& d : path_dirs()) dirs.push_back(d);
  return find_executable("berth-systemd", dirs);
}

void run_systemd_helper(const std::vector<std::string>& args, const std::string& what) {
  if (!path_exists("/run/systemd/system")) fail("{}: cgroupDriver is systemd but systemd does not run this host", what);
  RunOptions opts;
  opts.timeout = std::chrono::seconds(45);  // the helper waits up to 30 s for systemd's job
  auto res = run_command(systemd_helper(), args, opts);
  if (!res.ok()) fail("{}: berth-systemd {}: {}", what, res.describe(), trim(res.err));
}

// systemd's own rounding (libcontainer does the same): CPUQuotaPerSecUSec in 10 ms steps.
uint64_t quota_per_sec_usec(const PodCgroupResources& r) {
  uint64_t v = static_cast<uint64_t>(*r.cpu_quota_us) * 1000000 / static_cast<uint64_t>(r.cpu_period_us);
  return (v + 9999) / 10000 * 10000;
}

void start_pod_slice(const Config& cfg, const Pod& pod, const PodCgroupResources& r) {
  std::string slice = pod_cgroup_parent(cfg, pod);
  std::vector<std::string> args = {"start-slice", "--unit", slice, "--description",
                                   fmt::format("berthlet pod {}/{}", pod.namespace_, pod.name)};
  auto prop = [&](const char* name, uint64_t v) {
    args.push_back("--property");
    args.push_back(fmt::format("{}=t:{}", name, v));
  };
  if (pure_cgroup_v2()) prop("CPUWeight", cpu_weight_from_shares(r.cpu_shares));
  else prop("CPUShares", r.cpu_shares);
  if (r.memory_max) prop("MemoryMax", static_cast<uint64_t>(*r.memory_max));
  if (r.cpu_quota_us) prop("CPUQuotaPerSecUSec", quota_per_sec_usec(r));
  run_systemd_helper(args, fmt::format("create the pod's slice {}", slice));
}

// cgroup v2 needs each ancestor to hand its controllers down before a child can set limits.
void enable_controllers(const std::string& dir) {
  auto available = split(trim(read_file(path_join(dir, "cgroup.controllers"))), ' ');
  auto enabled = split(trim(read_file(path_join(dir, "cgroup.subtree_control"))), ' ');
  std::string want;
  for (const char* c : {"cpu", "memory", "pids"})
    if (std::count(available.begin(), available.end(), c) && !std::count(enabled.begin(), enabled.end(), c))
      want += fmt::format("{}+{}", want.empty() ? "" : " ", c);
  if (!want.empty()) write_file(path_join(dir, "cgroup.subtree_control"), want, false);
}

void make_pod_dir_v2(const Config& cfg, const Pod& pod, const PodCgroupResources& r) {
  std::string rel = pod_cgroup_parent(cfg, pod);
  std::string dir = kCgroupMount;
  for (auto& part : split(rel, '/')) {
    with_context(fmt::format("enable controllers in {}", dir), [&] { enable_controllers(dir); });
    dir = path_join(dir, part);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail_errno("create cgroup {}", dir);
  }
  auto set = [&](const char* file, const std::string& value) {
    with_context(fmt::format("set {} of {}", file, dir), [&] { write_file(path_join(dir, file), value, false); });
  };
  set("cpu.weight", std::to_string(cpu_weight_from_shares(r.cpu_shares)));
  set("memory.max", r.memory_max ? std::to_string(*r.memory_max) : "max");
  set("cpu.max", fmt::format("{} {}", r.cpu_quota_us ? std::to_string(*r.cpu_quota_us) : "max", r.cpu_period_us));
}

} // namespace

PodCgroupResources pod_cgroup_resources(const PodSpec& spec) {
  // The pod's sums as one container's resources; each is set only when every container has it.
  Resources sum;
  sum.cpu_request_milli = sum.cpu_limit_milli = sum.memory_limit = 0;
  auto add = [](std::optional<int64_t>& total, const std::optional<int64_t>& v, bool init) {
    if (!total) return;
    if (!v) total.reset();
    else total = init ? std::max(*total, *v) : *total + *v;
  };
  // Init containers run one at a time, before the others: the pod needs the larger.
  for (auto* list : {&spec.containers, &spec.init_containers})
    for (auto& c : *list) {
      bool init = list == &spec.init_containers;
      auto& r = c.resources;
      add(sum.cpu_request_milli, r.cpu_request_milli ? r.cpu_request_milli : std::optional<int64_t>(0), init);
      add(sum.cpu_limit_milli, r.cpu_limit_milli, init);
      add(sum.memory_limit, r.memory_limit, init);
    }
  PodCgroupResources out;
  if (qos_class(spec) == "BestEffort") return out;  // the minimum shares, no limit
  auto cpu = convert_cpu(sum);
  out.cpu_shares = static_cast<uint64_t>(cpu.shares);
  if (cpu.quota) {
    out.cpu_quota_us = cpu.quota;
    out.cpu_period_us = cpu.period;
  }
  out.memory_max = sum.memory_limit;
  return out;
}

uint64_t cpu_weight_from_shares(uint64_t shares) {
  if (shares < 2) shares = 2;
  return 1 + ((shares - 2) * 9999) / 262142;
}

std::string pod_cgroup_parent(const Config& cfg, const Pod& pod) {
  if (cfg.cgroup_driver == CgroupDriver::systemd) return pod_slice(cfg, qos_dir(pod), pod.uid);
  return pod_dir(cfg, qos_dir(pod), pod.uid);
}

std::string slice_path(const std::string& slice) {
  std::string name = slice.substr(0, slice.size() - std::string_view(".slice").size());
  std::string path;
  for (size_t dash = name.find('-'); dash != std::string::npos; dash = name.find('-', dash + 1))
    path.append("/").append(name, 0, dash).append(".slice"); // (no temporaries: GCC 12's -Wrestrict misfires on "/" + string&&)
  return path + "/" + slice;
}

void ensure_pod_cgroup(const Config& cfg, const Pod& pod) {
  auto r = pod_cgroup_resources(pod.spec);
  if (cfg.cgroup_driver == CgroupDriver::systemd) start_pod_slice(cfg, pod, r);
  else if (pure_cgroup_v2()) make_pod_dir_v2(cfg, pod, r);
}

void remove_pod_cgroups(const Config& cfg, const std::string& uid) {
  if (!valid_pod_uid(uid)) return;
  if (cfg.cgroup_driver == CgroupDriver::systemd) {
    // A slice that is gone is fine: stop only those whose cgroup is there.
    for (const char* qos : kQosDirs) {
      std::string slice = pod_slice(cfg, qos, uid);
      std::string path = slice_path(slice);
      if (!path_exists(kCgroupMount + path) && !path_exists(std::string(kCgroupMount) + "/systemd" + path)) continue;
      try {
        run_systemd_helper({"stop", "--unit", slice}, fmt::format("remove the pod's slice {}", slice));
      } catch (const std::exception& e) {
        log_error("pod {}: {}", uid, e.what());
      }
    }
    return;
  }
  auto mountinfo = try_read_file("/proc/self/mountinfo");
  if (!mountinfo) return;
  for (auto& line : split(*mountinfo, '\n')) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto fstype = split(line.substr(dash + 3), ' ');
    if (fstype.empty() || (fstype[0] != "cgroup" && fstype[0] != "cgroup2")) continue;
    auto fields = split(line.substr(0, dash), ' ');
    if (fields.size() < 5) continue;
    for (const char* qos : kQosDirs) ::rmdir(path_join(fields[4], pod_dir(cfg, qos, uid)).c_str());
  }
}

} // namespace berth::agent
