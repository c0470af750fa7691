// runc's `events --stats` data from cgroup v2 files. The shape is runc's types.Stats
// encoded by Go: fields tagged omitempty vanish when zero, the others are always there,
// and v2 values are mapped to their v1 names the way runc's fs2 driver does
// (memory.swap is memory+swap, io.stat becomes ioServiceBytesRecursive/ioServicedRecursive).
#include <dirent.h>

#include <cstdint>
#include <limits>
#include <map>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/cgroup.hpp"

namespace berth {

namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max(); // "max", as runc reports it

std::optional<std::string> read_optional(const std::string& file) {
  try {
    return try_read_file(file);
  } catch (const Error&) {
    return std::nullopt; // e.g. ENODEV/EOPNOTSUPP for files a controller does not back
  }
}

// A single-value file: a number, or "max".
std::optional<uint64_t> read_value(const std::string& file) {
  auto text = read_optional(file);
  if (!text) return std::nullopt;
  auto t = trim(*text);
  if (t == "max") return kMax;
  return parse_uint(t);
}

// "key value" lines (memory.stat, cpu.stat, memory.events).
std::map<std::string, uint64_t> read_key_values(const std::string& file) {
  std::map<std::string, uint64_t> out;
  auto text = read_optional(file);
  if (!text) return out;
  for (auto& line : split(*text, '\n')) {
    auto f = split(line, ' ');
    if (f.size() == 2)
      if (auto v = parse_uint(trim(f[1]))) out[f[0]] = *v;
  }
  return out;
}

uint64_t get(const std::map<std::string, uint64_t>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

// Go's omitempty for integers.
void put_nonzero(json& obj, const char* key, uint64_t v) {
  if (v != 0) obj[key] = v;
}

// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" lines; absent file: no "psi" at all.
std::optional<json> read_psi(const std::string& file) {
  auto text = read_optional(file);
  if (!text) return std::nullopt;
  json psi = json::object();
  for (auto& line : split(*text, '\n')) {
    auto fields = split(line, ' ');
    if (fields.empty() || (fields[0] != "some" && fields[0] != "full")) continue;
    json data = {{"avg10", 0.0}, {"avg60", 0.0}, {"avg300", 0.0}, {"total", 0}};
    for (size_t i = 1; i < fields.size(); i++) {
      auto eq = fields[i].find('=');
      if (eq == std::string::npos) continue;
      std::string key = fields[i].substr(0, eq), value(trim(fields[i].substr(eq + 1)));
      if (key == "total") data["total"] = parse_uint(value).value_or(0);
      else if (data.contains(key)) data[key] = std::strtod(value.c_str(), nullptr);
    }
    psi[fields[0]] = data;
  }
  for (const char* k : {"some", "full"})
    if (!psi.contains(k)) psi[k] = {{"avg10", 0.0}, {"avg60", 0.0}, {"avg300", 0.0}, {"total", 0}};
  return psi;
}

// "0-2,7" → [0, 1, 2, 7]
json cpu_list(const std::string& text) {
  json out = json::array();
  for (auto& range : split(std::string(trim(text)), ',')) {
    auto dash = range.find('-');
    auto lo = parse_uint(range.substr(0, dash));
    auto hi = dash == std::string::npos ? lo : parse_uint(range.substr(dash + 1));
    if (!lo || !hi || *hi < *lo || *hi - *lo > 65535) continue;
    for (uint64_t i = *lo; i <= *hi; i++) out.push_back(i);
  }
  return out;
}

json cpu_stats(const std::string& path) {
  auto stat = read_key_values(path + "/cpu.stat");
  json usage = json::object();
  put_nonzero(usage, "total", get(stat, "usage_usec") * 1000);
  usage["kernel"] = get(stat, "system_usec") * 1000;
  usage["user"] = get(stat, "user_usec") * 1000;
  json throttling = json::object();
  put_nonzero(throttling, "periods", get(stat, "nr_periods"));
  put_nonzero(throttling, "throttledPeriods", get(stat, "nr_throttled"));
  put_nonzero(throttling, "throttledTime", get(stat, "throttled_usec") * 1000);
  json cpu = {{"usage", usage}, {"throttling", throttling}};
  if (auto psi = read_psi(path + "/cpu.pressure")) cpu["psi"] = *psi;
  return cpu;
}

json cpuset_stats(const std::string& path) {
  json cpuset = {{"cpu_exclusive", 0},      {"mem_hardwall", 0},       {"mem_exclusive", 0},
                 {"memory_migrate", 0},     {"memory_spread_page", 0}, {"memory_spread_slab", 0},
                 {"memory_pressure", 0},    {"sched_load_balance", 0}, {"sched_relax_domain_level", 0}};
  if (auto cpus = read_optional(path + "/cpuset.cpus.effective"); cpus && !trim(*cpus).empty())
    cpuset["cpus"] = cpu_list(*cpus);
  if (auto mems = read_optional(path + "/cpuset.mems.effective"); mems && !trim(*mems).empty())
    cpuset["mems"] = cpu_list(*mems);
  return cpuset;
}

json memory_entry(uint64_t limit, uint64_t usage, uint64_t max, uint64_t failcnt) {
  json e = {{"limit", limit}};
  put_nonzero(e, "usage", usage);
  put_nonzero(e, "max", max);
  e["failcnt"] = failcnt;
  return e;
}

json memory_stats(const std::string& path) {
  auto stat = read_key_values(path + "/memory.stat");
  json memory = json::object();
  put_nonzero(memory, "cache", get(stat, "file"));
  uint64_t usage = read_value(path + "/memory.current").value_or(0);
  uint64_t limit = read_value(path + "/memory.max").value_or(0);
  // failcnt: v1 counted hits of the limit; memory.events "max" is the v2 counterpart.
  memory["usage"] = memory_entry(limit, usage, read_value(path + "/memory.peak").value_or(0),
                                 get(read_key_values(path + "/memory.events"), "max"));
  // runc reports swap as memory+swap, as v1 did; its peak cannot be combined (0).
  uint64_t swap_usage = read_value(path + "/memory.swap.current").value_or(0);
  uint64_t swap_limit = read_value(path + "/memory.swap.max").value_or(0);
  uint64_t total_limit = swap_limit == kMax || limit == kMax || swap_limit + limit < limit ? kMax : swap_limit + limit;
  memory["swap"] = memory_entry(total_limit, swap_usage + usage, 0,
                                get(read_key_values(path + "/memory.swap.events"), "max"));
  memory["kernel"] = memory_entry(0, 0, 0, 0);
  memory["kernelTCP"] = memory_entry(0, 0, 0, 0);
  if (!stat.empty()) memory["raw"] = stat;
  if (auto psi = read_psi(path + "/memory.pressure")) memory["psi"] = *psi;
  return memory;
}

json pids_stats(const std::string& path) {
  json pids = json::object();
  auto current = read_value(path + "/pids.current");
  if (!current) {
    // No pids controller: count the processes, as runc does.
    put_nonzero(pids, "current", cgroup_pids(path).size());
    return pids;
  }
  put_nonzero(pids, "current", *current);
  uint64_t max = read_value(path + "/pids.max").value_or(0);
  put_nonzero(pids, "limit", max == kMax ? 0 : max); // runc: "max" is reported as 0
  return pids;
}

json blkio_stats(const std::string& path) {
  json bytes = json::array(), ios = json::array();
  if (auto text = read_optional(path + "/io.stat")) {
    for (auto& line : split(*text, '\n')) {
      auto fields = split(line, ' ');
      if (fields.size() < 2) continue;
      auto colon = fields[0].find(':');
      if (colon == std::string::npos) continue;
      auto major = parse_uint(fields[0].substr(0, colon)), minor = parse_uint(fields[0].substr(colon + 1));
      if (!major || !minor) continue;
      for (size_t i = 1; i < fields.size(); i++) {
        auto eq = fields[i].find('=');
        if (eq == std::string::npos) continue;
        std::string key = fields[i].substr(0, eq);
        auto value = parse_uint(trim(fields[i].substr(eq + 1)));
        if (!value) continue;
        json* table = key == "rbytes" || key == "wbytes" ? &bytes : key == "rios" || key == "wios" ? &ios : nullptr;
        if (!table) continue; // dbytes, dios, cost.*: no v1 name
        json entry = json::object();
        put_nonzero(entry, "major", *major);
        put_nonzero(entry, "minor", *minor);
        entry["op"] = key[0] == 'r' ? "Read" : "Write";
        put_nonzero(entry, "value", *value);
        table->push_back(entry);
      }
    }
  }
  json blkio = json::object();
  if (!bytes.empty()) blkio["ioServiceBytesRecursive"] = bytes;
  if (!ios.empty()) blkio["ioServicedRecursive"] = ios;
  if (auto psi = read_psi(path + "/io.pressure")) blkio["psi"] = *psi;
  return blkio;
}

json hugetlb_stats(const std::string& path) {
  json hugetlb = json::object();
  DIR* d = ::opendir(path.c_str());
  if (!d) return hugetlb;
  std::vector<std::string> sizes;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name; // hugetlb.2MB.current
    if (starts_with(name, "hugetlb.") && name.size() > 16 && name.ends_with(".current") &&
        name.find(".rsvd.") == std::string::npos)
      sizes.push_back(name.substr(8, name.size() - 8 - 8));
  }
  ::closedir(d);
  for (auto& size : sizes) {
    std::string prefix = path + "/hugetlb." + size;
    // runc prefers the reservation counter, which also covers reserved, untouched pages.
    auto usage = read_value(prefix + ".rsvd.current");
    if (!usage) usage = read_value(prefix + ".current");
    json entry = json::object();
    put_nonzero(entry, "usage", usage.value_or(0));
    entry["failcnt"] = get(read_key_values(prefix + ".events"), "max");
    hugetlb[size] = entry;
  }
  return hugetlb;
}

} // namespace

json cgroup_stats(const std::string& path) {
  if (path.empty()) fail("the container has no cgroup");
  if (!path_exists(path)) fail("cgroup {} does not exist", path);
  return {
    {"cpu", cpu_stats(path)},
    {"cpuset", cpuset_stats(path)},
    {"memory", memory_stats(path)},
    {"pids", pids_stats(path)},
    {"blkio", blkio_stats(path)},
    {"hugetlb", hugetlb_stats(path)},
    {"intel_rdt", json::object()},
    {"network_interfaces", nullptr},
  };
}

} // namespace berth
