// linux.resources from CRI's LinuxContainerResources, as containerd's WithResources: zero
// means "not set"; the memory limit doubles as memory+swap unless the request sets a swap
// limit, so that a container does not swap by default.
#include <cctype>

#include "cri/pod/spec_internal.hpp"

namespace berth::cri::spec {
namespace {

constexpr size_t kMaxHugepageLimits = 16;
constexpr size_t kMaxUnified = 256;
constexpr size_t kMaxUnifiedValue = 64 * 1024;

int64_t at_least(int64_t v, int64_t min, std::string_view field, std::string_view what) {
  if (v < min) invalid("{}: {} is not {}", field, v, what);
  return v;
}

// cpuset lists: "0-3,8,10-11".
void check_cpuset(const std::string& v, std::string_view field) {
  check_text(v, field);
  if (v.find_first_not_of("0123456789,-") != std::string::npos)
    invalid("{}: \"{}\" is not a list of numbers and ranges such as 0-3,8", field, v);
}

// "2MB", "1GB", "64KB": what the kubelet sends and berth turns into hugetlb.<size>.max.
void check_page_size(const std::string& size, std::string_view field) {
  size_t digits = 0;
  while (digits < size.size() && std::isdigit(static_cast<unsigned char>(size[digits]))) digits++;
  std::string unit = size.substr(digits);
  if (digits == 0 || digits > 6 || (unit != "KB" && unit != "MB" && unit != "GB"))
    invalid("{}: \"{}\" is not a page size such as 2MB or 1GB", field, size);
}

// A file name of the container's cgroup ("memory.high"); berth checks the controller.
void check_unified_key(const std::string& key, std::string_view field) {
  check_text(key, field, 255);
  if (key.empty() || key.find('/') != std::string::npos || key == "." || key == ".." ||
      key.find('.') == std::string::npos)
    invalid("{}: \"{}\" is not a cgroup file name such as memory.high", field, key);
}

} // namespace

} // namespace berth::cri::spec

namespace berth::cri {

json oci_resources(const runtime::v1::LinuxContainerResources& res, const SpecOptions&, std::string_view field) {
  using spec::invalid;
  auto f = [&](std::string_view name) { return fmt::format("{}.{}", field, name); };
  json out = json::object();
  json cpu = json::object(), memory = json::object();

  if (auto period = spec::at_least(res.cpu_period(), 0, f("cpu_period"), "a period in microseconds"))
    cpu["period"] = static_cast<uint64_t>(period);
  if (auto quota = spec::at_least(res.cpu_quota(), -1, f("cpu_quota"), "a quota in microseconds (or -1)"))
    cpu["quota"] = quota;
  if (auto shares = spec::at_least(res.cpu_shares(), 0, f("cpu_shares"), "a number of CPU shares"))
    cpu["shares"] = static_cast<uint64_t>(shares);
  if (!res.cpuset_cpus().empty()) {
    spec::check_cpuset(res.cpuset_cpus(), f("cpuset_cpus"));
    cpu["cpus"] = res.cpuset_cpus();
  }
  if (!res.cpuset_mems().empty()) {
    spec::check_cpuset(res.cpuset_mems(), f("cpuset_mems"));
    cpu["mems"] = res.cpuset_mems();
  }

  int64_t limit = spec::at_least(res.memory_limit_in_bytes(), -1, f("memory_limit_in_bytes"),
                                 "a number of bytes (or -1)");
  int64_t swap = spec::at_least(res.memory_swap_limit_in_bytes(), -1, f("memory_swap_limit_in_bytes"),
                                "a number of bytes (or -1)");
  // CRI's swap limit is memory plus swap, as OCI's memory.swap.
  if (swap > 0 && limit == 0)
    invalid("{}: a swap limit needs memory_limit_in_bytes too", f("memory_swap_limit_in_bytes"));
  if (swap > 0 && limit > 0 && swap < limit)
    invalid("{}: {} is below memory_limit_in_bytes {} (it counts memory plus swap)",
            f("memory_swap_limit_in_bytes"), swap, limit);
  if (limit != 0) {
    memory["limit"] = limit;
    memory["swap"] = swap != 0 ? swap : limit;
  } else if (swap != 0) {
    memory["swap"] = swap;  // -1 alone: unlimited swap
  }

  const auto& pages = res.hugepage_limits();
  if (static_cast<size_t>(pages.size()) > spec::kMaxHugepageLimits)
    invalid("{}: {} limits, at most {} are accepted", f("hugepage_limits"), pages.size(), spec::kMaxHugepageLimits);
  for (int i = 0; i < pages.size(); i++) {
    std::string name = spec::indexed(f("hugepage_limits"), static_cast<size_t>(i));
    spec::check_page_size(pages[i].page_size(), name + ".page_size");
    out["hugepageLimits"].push_back({{"pageSize", pages[i].page_size()}, {"limit", pages[i].limit()}});
  }

  if (res.unified_size() > 0) {
    if (res.unified_size() > static_cast<int>(spec::kMaxUnified))
      invalid("{}: {} entries, at most {} are accepted", f("unified"), res.unified_size(), spec::kMaxUnified);
    json unified = json::object();
    for (const auto& [key, value] : res.unified()) {
      spec::check_unified_key(key, f("unified"));
      spec::check_text(value, fmt::format("{}[\"{}\"]", f("unified"), key), spec::kMaxUnifiedValue);
      unified[key] = value;
    }
    out["unified"] = std::move(unified);
  }
  if (!cpu.empty()) out["cpu"] = std::move(cpu);
  if (!memory.empty()) out["memory"] = std::move(memory);
  return out;
}

} // namespace berth::cri
