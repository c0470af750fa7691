#include "runtime/lib/cgroup_resources.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cgroupv2 {

namespace {

constexpr uint64_t kDefaultCpuPeriod = 100000; // the kernel's, and runc's default

// Collects the plan; `w()` adds a write to one file, `warn()` a field v2 cannot express.
class Planner {
public:
  explicit Planner(ResourcePlan& plan) : plan_(plan) {}

  void w(const JsonView& field, const std::string& controller, const std::string& file, const std::string& value,
         bool quiet_if_missing = false) {
    CgroupWrite cw{field.path(), controller, {{file, value}}, quiet_if_missing, false};
    add(std::move(cw));
  }
  void add(CgroupWrite cw) {
    if (!cw.controller.empty() &&
        std::find(plan_.controllers.begin(), plan_.controllers.end(), cw.controller) == plan_.controllers.end())
      plan_.controllers.push_back(cw.controller);
    plan_.writes.push_back(std::move(cw));
  }
  void warn(const JsonView& field, std::string_view why) {
    plan_.warnings.push_back(fmt::format("{}: not applied: {}", field.path(), why));
  }

private:
  ResourcePlan& plan_;
};

// A byte limit: 0 is "unset", -1 is "unlimited", anything else below 0 is an error.
int64_t byte_limit(const JsonView& v) {
  if (v.is_null()) return 0;
  int64_t n = v.as_int();
  if (n < -1) v.bad(fmt::format("{} is not a limit (a number of bytes, or -1 for unlimited)", n));
  return n;
}

void plan_memory(Planner& p, const JsonView& m, const LiveLimits* live, ResourcePlan& plan) {
  if (m.is_null()) return;
  m.expect_object();
  auto limit_v = m["limit"], swap_v = m["swap"], reservation_v = m["reservation"];
  int64_t limit = byte_limit(limit_v);
  int64_t swap = byte_limit(swap_v);
  int64_t reservation = byte_limit(reservation_v);
  if (limit != 0 || swap != 0) {
    // For an update, the half that is not given comes from the cgroup, as runc takes it
    // from the stored config: memory+swap = memory.max + memory.swap.max.
    int64_t eff_limit = limit;
    int64_t eff_swap = swap;
    if (live) {
      if (limit == 0) eff_limit = live->memory_max;
      if (swap_v.is_null()) {
        if (limit == -1) eff_swap = 0; // runc update: --memory -1 alone also lifts swap
        else if (live->swap_max == -1) eff_swap = -1;
        else if (live->swap_max > 0 && live->memory_max > 0) eff_swap = live->memory_max + live->swap_max;
      }
    }
    int64_t swap_max = with_context(swap_v.path(), [&] { return swap_to_v2(eff_swap, eff_limit); });
    // 0 from the conversion means "leave swap alone", unless memory+swap == memory: no swap.
    std::string swap_text = swap_max != 0 ? limit_text(swap_max) : eff_swap > 0 ? "0" : "";
    // Without swap accounting, "max" and "0" change nothing; runc skips them silently.
    if (!swap_text.empty())
      p.w(swap_v.is_null() ? limit_v : swap_v, "memory", "memory.swap.max", swap_text,
          swap_text == "max" || swap_text == "0");
    if (limit != 0) p.w(limit_v, "memory", "memory.max", limit_text(limit));
    plan.checked_memory = eff_limit;
    plan.checked_memory_swap = eff_swap;
    plan.effective_memory = {eff_limit, eff_swap};
  }
  if (reservation != 0) p.w(reservation_v, "memory", "memory.low", limit_text(reservation));
  for (const char* key : {"kernel", "kernelTCP"})
    if (m[key].present()) p.warn(m[key], "kernel memory limits do not exist in cgroup v2 (ignored, as runc does)");
  if (auto s = m["swappiness"]; s.present()) {
    uint64_t v = s.as_uint();
    if (v > 100) s.bad(fmt::format("{} is out of range (0-100)", v));
    p.warn(s, "cgroup v2 has no per-cgroup swappiness");
  }
  if (m.opt_bool("disableOOMKiller").value_or(false))
    p.warn(m["disableOOMKiller"], "cgroup v2 cannot disable the OOM killer");
  if (!m.opt_bool("useHierarchy").value_or(true))
    p.warn(m["useHierarchy"], "cgroup v2 is always hierarchical");
  plan.check_before_update = m.opt_bool("checkBeforeUpdate").value_or(false);
}

void plan_cpu(Planner& p, const JsonView& c, const LiveLimits* live, ResourcePlan& plan) {
  if (c.is_null()) return;
  c.expect_object();
  auto idle_v = c["idle"];
  std::optional<int64_t> idle = c.opt_int("idle");
  if (idle && *idle != 0 && *idle != 1) idle_v.bad(fmt::format("{} is not 0 or 1", *idle));
  if (idle) p.w(idle_v, "cpu", "cpu.idle", std::to_string(*idle));
  if (auto shares = c.opt_uint("shares"); shares && *shares != 0) {
    if (idle == 1) p.warn(c["shares"], "cpu.idle is 1: an idle cgroup has no weight");
    else p.w(c["shares"], "cpu", "cpu.weight", std::to_string(shares_to_weight(*shares)));
  }
  if (auto burst = c.opt_uint("burst")) {
    CgroupWrite cw{c["burst"].path(), "cpu", {{"cpu.max.burst", std::to_string(*burst)}}, false, true};
    p.add(std::move(cw));
  }
  int64_t quota = c.opt_int("quota").value_or(0);
  uint64_t period = c.opt_uint("period").value_or(0);
  if (quota != 0 || period != 0) {
    // Setting only one half keeps the other: from the cgroup on update, the defaults on create.
    int64_t q = quota;
    uint64_t per = period;
    if (live) {
      if (q == 0) q = live->cpu_quota.value_or(-1);
      if (per == 0) per = live->cpu_period.value_or(kDefaultCpuPeriod);
    }
    if (per == 0) per = kDefaultCpuPeriod;
    std::string text = (q > 0 ? std::to_string(q) : "max") + " " + std::to_string(per);
    plan.effective_cpu_max = {q > 0 ? q : -1, per};
    p.w(quota != 0 ? c["quota"] : c["period"], "cpu", "cpu.max", text);
  }
  for (const char* key : {"realtimeRuntime", "realtimePeriod"})
    if (auto v = c[key]; v.present() && v.raw() != 0)
      p.warn(v, "cgroup v2 has no realtime CPU bandwidth control (cpu.rt_*)");
}

void plan_cpuset(Planner& p, const JsonView& c) {
  if (c.is_null()) return;
  if (auto cpus = c.opt_string("cpus"); cpus && !cpus->empty()) p.w(c["cpus"], "cpuset", "cpuset.cpus", *cpus);
  if (auto mems = c.opt_string("mems"); mems && !mems->empty()) p.w(c["mems"], "cpuset", "cpuset.mems", *mems);
}

void plan_pids(Planner& p, const JsonView& pids) {
  if (pids.is_null()) return;
  pids.expect_object();
  auto v = pids["limit"];
  if (v.is_null()) return;
  int64_t limit = v.as_int();
  if (limit < -1) v.bad(fmt::format("{} is not a limit (a number of tasks, or 0 or -1 for unlimited)", limit));
  p.w(v, "pids", "pids.max", limit > 0 ? std::to_string(limit) : "max");
}

uint64_t blkio_weight(const JsonView& v) {
  uint64_t w = v.as_uint();
  if (w != 0 && (w < 10 || w > 1000)) v.bad(fmt::format("{} is out of range (10-1000)", w));
  return w;
}

void plan_io(Planner& p, const JsonView& b) {
  if (b.is_null()) return;
  b.expect_object();
  if (auto wv = b["weight"]; wv.present()) {
    if (uint64_t w = blkio_weight(wv)) {
      // BFQ takes the v1 range as is; io.weight (iocost) takes the converted value.
      CgroupWrite cw{wv.path(), "io", {{"io.bfq.weight", std::to_string(w)},
                                       {"io.weight", std::to_string(blkio_weight_to_io_weight(w))}}};
      p.add(std::move(cw));
    }
  }
  if (b["leafWeight"].present()) p.warn(b["leafWeight"], "leaf weights exist only in cgroup v1");
  b["weightDevice"].each([&](const JsonView& d) {
    int64_t major = d["major"].as_int(), minor = d["minor"].as_int();
    if (auto wv = d["weight"]; wv.present()) {
      if (uint64_t w = blkio_weight(wv)) {
        CgroupWrite cw{wv.path(), "io", {{"io.bfq.weight", fmt::format("{}:{} {}", major, minor, w)},
                                         {"io.weight", fmt::format("{}:{} {}", major, minor,
                                                                   blkio_weight_to_io_weight(w))}}};
        p.add(std::move(cw));
      }
    }
    if (d["leafWeight"].present()) p.warn(d["leafWeight"], "leaf weights exist only in cgroup v1");
  });
  // All throttles of one device go into one io.max line.
  std::vector<std::pair<std::pair<int64_t, int64_t>, IoMaxLimits>> devices;
  std::vector<std::string> fields;
  auto limits_of = [&](int64_t major, int64_t minor) -> IoMaxLimits& {
    for (auto& [dev, limits] : devices)
      if (dev == std::make_pair(major, minor)) return limits;
    devices.push_back({{major, minor}, {}});
    return devices.back().second;
  };
  const std::pair<const char*, std::optional<uint64_t> IoMaxLimits::*> throttles[] = {
    {"throttleReadBpsDevice", &IoMaxLimits::rbps},
    {"throttleWriteBpsDevice", &IoMaxLimits::wbps},
    {"throttleReadIOPSDevice", &IoMaxLimits::riops},
    {"throttleWriteIOPSDevice", &IoMaxLimits::wiops},
  };
  for (auto& [key, member] : throttles) {
    b[key].each([&](const JsonView& d) {
      limits_of(d["major"].as_int(), d["minor"].as_int()).*member = d["rate"].as_uint();
      if (std::find(fields.begin(), fields.end(), b[key].path()) == fields.end()) fields.push_back(b[key].path());
    });
  }
  for (auto& [dev, limits] : devices) {
    CgroupWrite cw{fmt::format("{}", fmt::join(fields, ", ")), "io",
                   {{"io.max", io_max_line(dev.first, dev.second, limits)}}};
    p.add(std::move(cw));
  }
}

void plan_hugetlb(Planner& p, const JsonView& limits) {
  limits.each([&](const JsonView& l) {
    auto size_v = l["pageSize"];
    std::string size = size_v.as_string();
    size_t digits = 0;
    while (digits < size.size() && std::isdigit(static_cast<unsigned char>(size[digits]))) digits++;
    std::string unit = size.substr(digits);
    if (digits == 0 || (unit != "KB" && unit != "MB" && unit != "GB"))
      size_v.bad(fmt::format("\"{}\" is not a page size such as 2MB or 1GB", size));
    std::string value = std::to_string(l["limit"].as_uint());
    p.w(l["limit"], "hugetlb", "hugetlb." + size + ".max", value);
    // Reservations (Linux 5.7+) get the same limit, as runc does; absent on older kernels.
    p.w(l["limit"], "hugetlb", "hugetlb." + size + ".rsvd.max", value, true);
  });
}

void plan_rdma(Planner& p, const JsonView& rdma) {
  rdma.each_member([&](const std::string& device, const JsonView& v) {
    if (device.empty() || device.find_first_of(" \t\n=") != std::string::npos)
      v.bad("is not an RDMA device name");
    std::string line = device;
    if (auto h = v.opt_uint("hcaHandles")) line += fmt::format(" hca_handle={}", *h);
    if (auto o = v.opt_uint("hcaObjects")) line += fmt::format(" hca_object={}", *o);
    if (line != device) p.w(v, "rdma", "rdma.max", line);
  });
}

void plan_unified(Planner& p, const JsonView& unified) {
  unified.each_member([&](const std::string& key, const JsonView& v) {
    std::string controller = unified_key_controller(key, v.path());
    std::string value = v.as_string();
    // Written line by line, as runc does (io.max and friends take one device per write).
    for (auto& line : split(value, '\n')) p.w(v, controller, key, line);
  });
}

} // namespace

uint64_t shares_to_weight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t blkio_weight_to_io_weight(uint64_t weight) {
  if (weight == 0) return 0;
  return 1 + (weight - 10) * 9999 / 990;
}

int64_t swap_to_v2(int64_t memory_swap, int64_t memory) {
  if (memory == -1 && memory_swap == 0) return -1; // unlimited memory: unlimited swap too
  if (memory_swap == -1 || memory_swap == 0) return memory_swap;
  if (memory == -1) return memory_swap;
  if (memory == 0) fail("unable to set swap limit without memory limit");
  if (memory < 0) fail("invalid memory value: {}", memory);
  if (memory_swap < memory) fail("memory+swap limit should be >= memory limit");
  return memory_swap - memory;
}

std::string limit_text(int64_t v) { return v == -1 ? "max" : std::to_string(v); }

std::string io_max_line(int64_t major, int64_t minor, const IoMaxLimits& limits) {
  std::string line = fmt::format("{}:{}", major, minor);
  auto add = [&](const char* key, const std::optional<uint64_t>& v) {
    if (v) line += *v == 0 ? fmt::format(" {}=max", key) : fmt::format(" {}={}", key, *v);
  };
  add("rbps", limits.rbps);
  add("wbps", limits.wbps);
  add("riops", limits.riops);
  add("wiops", limits.wiops);
  return line;
}

std::string unified_key_controller(const std::string& key, const std::string& field) {
  static const std::set<std::string> known = {"cgroup", "cpu", "cpuset", "io", "memory",
                                              "pids", "hugetlb", "rdma", "misc"};
  // Files berth manages itself: writing them would move processes or break pause/kill.
  static const std::set<std::string> reserved = {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
                                                 "cgroup.kill", "cgroup.freeze", "cgroup.type"};
  if (key.empty() || key.find('/') != std::string::npos || key.find("..") != std::string::npos)
    fail("{}: \"{}\" must be a file name in the cgroup (no '/' or '..')", field, key);
  auto dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size())
    fail("{}: \"{}\" must be of the form CONTROLLER.PARAMETER", field, key);
  std::string controller = key.substr(0, dot);
  if (!known.count(controller)) fail("{}: \"{}\": unknown cgroup v2 controller \"{}\"", field, key, controller);
  if (reserved.count(key)) fail("{}: \"{}\" is managed by the runtime and cannot be set", field, key);
  return controller == "cgroup" ? "" : controller;
}

ResourcePlan plan_resources(const json& resources, const std::string& prefix, const LiveLimits* live) {
  ResourcePlan plan;
  if (resources.is_null()) return plan;
  JsonView r(resources, prefix);
  r.expect_object();
  Planner p(plan);
  static const std::set<std::string> known = {"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits",
                                              "network", "rdma", "unified"};
  r.each_member([&](const std::string& key, const JsonView& v) {
    if (!known.count(key) && v.present()) p.warn(v, "unknown field");
  });
  // Same order as runc: pids, memory, io, cpu, cpuset, hugetlb, rdma, then unified last
  // so that its raw values win.
  plan_pids(p, r["pids"]);
  plan_memory(p, r["memory"], live, plan);
  plan_io(p, r["blockIO"]);
  plan_cpu(p, r["cpu"], live, plan);
  plan_cpuset(p, r["cpu"]);
  plan_hugetlb(p, r["hugepageLimits"]);
  plan_rdma(p, r["rdma"]);
  if (auto n = r["network"]; n.present() && !(n.raw().is_object() && n.raw().empty()))
    p.warn(n, "cgroup v2 has no net_cls/net_prio controllers");
  plan_unified(p, r["unified"]);
  if (r["devices"].present()) plan.devices = parse_device_rules(r["devices"]);
  return plan;
}

int64_t ram_in_bytes(const std::string& text) {
  // go-units parseSize: a float, an optional space, then an optional b, k, m, g, t or p
  // (case-insensitive, binary multiples) with an optional trailing "b" or "ib".
  auto sep = text.find_last_of("0123456789. ");
  if (sep == std::string::npos) fail("invalid size: '{}'", text);
  std::string num = text[sep] == ' ' ? text.substr(0, sep) : text.substr(0, sep + 1);
  std::string suffix = text.substr(sep + 1);
  char* end = nullptr;
  errno = 0;
  double size = std::strtod(num.c_str(), &end);
  if (num.empty() || end != num.c_str() + num.size() || errno == ERANGE || std::isspace(num[0]))
    fail("invalid size: '{}'", text);
  if (size < 0) fail("invalid size: '{}'", text);
  if (suffix.empty()) return static_cast<int64_t>(size);
  std::string s = suffix;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s.size() > 3) fail("invalid suffix: '{}'", s);
  if (s[0] == 'b') {
    if (s.size() > 1) fail("invalid suffix: '{}'", s);
    return static_cast<int64_t>(size);
  }
  static const std::string units = "kmgtp";
  auto u = units.find(s[0]);
  if (u == std::string::npos) fail("invalid suffix: '{}'", s);
  if ((s.size() == 2 && s[1] != 'b') || (s.size() == 3 && s.substr(1) != "ib")) fail("invalid suffix: '{}'", s);
  double bytes = size * std::pow(1024.0, static_cast<double>(u + 1));
  if (bytes >= 9.2e18) fail("invalid size: '{}'", text);
  return static_cast<int64_t>(bytes);
}

} // namespace berth::cgroupv2

namespace berth {

// runc's update: numbers parse as Go's strconv, sizes as go-units; every error is
// "invalid value for <flag>: ...". Only the flags given appear in the result.
json resources_from_update_flags(const std::map<std::string, std::string>& flags) {
  json r = json::object();
  auto bad = [](const std::string& flag, const std::string& why) -> void {
    fail("invalid value for {}: {}", flag, why);
  };
  auto parse_u64 = [&](const std::string& flag, const std::string& v) {
    auto n = parse_uint(v);
    if (!n) bad(flag, fmt::format("strconv.ParseUint: parsing \"{}\": invalid syntax", v));
    return *n;
  };
  auto parse_i64 = [&](const std::string& flag, const std::string& v) {
    auto n = parse_int(v);
    if (!n) bad(flag, fmt::format("strconv.ParseInt: parsing \"{}\": invalid syntax", v));
    return *n;
  };
  for (auto& [raw_name, value] : flags) {
    std::string flag = raw_name;
    while (!flag.empty() && flag[0] == '-') flag.erase(0, 1);
    if (flag == "blkio-weight") {
      int64_t w = parse_i64(flag, value);
      if (w != 0 && (w < 10 || w > 1000)) bad(flag, fmt::format("{} is out of range (10-1000)", w));
      if (w != 0) r["blockIO"]["weight"] = w;
    } else if (flag == "cpu-period" || flag == "cpu-rt-period" || flag == "cpu-share" || flag == "cpu-burst") {
      static const std::map<std::string, std::string> keys = {
        {"cpu-period", "period"}, {"cpu-rt-period", "realtimePeriod"}, {"cpu-share", "shares"}, {"cpu-burst", "burst"}};
      if (!value.empty()) r["cpu"][keys.at(flag)] = parse_u64(flag, value);
    } else if (flag == "cpu-quota" || flag == "cpu-rt-runtime" || flag == "cpu-idle") {
      static const std::map<std::string, std::string> keys = {
        {"cpu-quota", "quota"}, {"cpu-rt-runtime", "realtimeRuntime"}, {"cpu-idle", "idle"}};
      if (!value.empty()) r["cpu"][keys.at(flag)] = parse_i64(flag, value);
    } else if (flag == "cpuset-cpus" || flag == "cpuset-mems") {
      if (!value.empty()) r["cpu"][flag == "cpuset-cpus" ? "cpus" : "mems"] = value;
    } else if (flag == "memory" || flag == "memory-swap" || flag == "memory-reservation" || flag == "kernel-memory" ||
               flag == "kernel-memory-tcp") {
      static const std::map<std::string, std::string> keys = {{"memory", "limit"},
                                                               {"memory-swap", "swap"},
                                                               {"memory-reservation", "reservation"},
                                                               {"kernel-memory", "kernel"},
                                                               {"kernel-memory-tcp", "kernelTCP"}};
      if (value.empty()) continue;
      int64_t bytes = value == "-1" ? -1 : with_context(fmt::format("invalid value for {}", flag), [&] {
        return cgroupv2::ram_in_bytes(value);
      });
      r["memory"][keys.at(flag)] = bytes;
    } else if (flag == "pids-limit") {
      r["pids"]["limit"] = parse_i64(flag, value);
    } else if (flag == "l3-cache-schema") {
      if (!value.empty()) fail("Intel RDT/CAT: l3 cache schema is not enabled");
    } else if (flag == "mem-bw-schema") {
      if (!value.empty()) fail("Intel RDT/MBA: memory bandwidth schema is not enabled");
    } else {
      fail("update: unknown flag \"--{}\"", flag);
    }
  }
  return r;
}

} // namespace berth
