#include "agent/lib/config.hpp"

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <set>

#include "agent/lib/manifest.hpp"
#include "agent/lib/quantity.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::agent {
namespace {

// KubeletConfiguration v1beta1 fields (staging/src/k8s.io/kubelet/config/v1beta1/types.go)
// berthlet does not implement: they are accepted and reported once as ignored.
const std::set<std::string_view> kKubeletOnly = {
    "enableServer", "syncFrequency", "httpCheckFrequency", "staticPodURL", "staticPodURLHeader", "port",
    "tlsCertFile", "tlsPrivateKeyFile", "tlsCipherSuites", "tlsCurvePreferences", "tlsMinVersion",
    "rotateCertificates", "serverTLSBootstrap", "authentication", "authorization", "registryPullQPS",
    "registryBurst", "imagePullCredentialsVerificationPolicy", "preloadedImagesVerificationAllowlist",
    "eventRecordQPS", "eventBurst", "enableDebuggingHandlers", "enableContentionProfiling", "healthzPort",
    "healthzBindAddress", "oomScoreAdj", "streamingConnectionIdleTimeout",
    "nodeStatusReportFrequency", "nodeLeaseDurationSeconds", "imageMaximumGCAge", "volumeStatsAggPeriod",
    "kubeletCgroups", "systemCgroups", "cgroupsPerQOS", "cpuManagerPolicy", "singleProcessOOMKill",
    "cpuManagerPolicyOptions", "cpuManagerReconcilePeriod", "draManagerReconcilePeriod", "memoryManagerPolicy",
    "topologyManagerPolicy", "topologyManagerScope", "topologyManagerPolicyOptions", "qosReserved", "hairpinMode",
    "maxPods", "podCIDR", "podPidsLimit", "runOnce", "cpuCFSQuota", "cpuCFSQuotaPeriod", "nodeStatusMaxImages",
    "maxOpenFiles", "contentType", "kubeAPIQPS", "kubeAPIBurst", "serializeImagePulls", "maxParallelImagePulls",
    "evictionHard", "evictionSoft", "evictionSoftGracePeriod", "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod", "evictionMinimumReclaim", "mergeDefaultEvictionSettings", "podsPerCore",
    "enableControllerAttachDetach", "protectKernelDefaults", "makeIPTablesUtilChains", "iptablesMasqueradeBit",
    "iptablesDropBit", "featureGates", "failSwapOn", "memorySwap", "containerLogMaxWorkers",
    "configMapAndSecretChangeDetectionStrategy", "systemReserved", "kubeReserved", "reservedSystemCPUs",
    "showHiddenMetricsForVersion", "systemReservedCgroup", "kubeReservedCgroup", "enforceNodeAllocatable",
    "allowedUnsafeSysctls", "volumePluginDir", "providerID", "kernelMemcgNotification",
    "enableSystemLogHandler", "enableSystemLogQuery", "shutdownGracePeriod", "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority", "crashLoopBackOff", "reservedMemory", "enableProfilingHandler",
    "enableDebugFlagsHandler", "seccompDefault", "memoryThrottlingFactor", "memoryReservationPolicy",
    "registerWithTaints", "registerNode", "tracing", "localStorageCapacityIsolation", "imageServiceEndpoint",
    "failCgroupV1", "userNamespaces"};

using Field = std::function<void(Config&, const JsonView&)>;

// A metav1.Duration; as the kubelet's defaulting, "0s" (kubeadm writes it for every
// duration it does not set) means the default.
Field duration(std::chrono::milliseconds Config::*member) {
  return [member](Config& c, const JsonView& f) {
    auto d = parse_duration(f.as_string());
    if (d.count() < 0) f.bad("must not be negative");
    if (d.count() > 0) c.*member = d;
  };
}

Field string_or_default(std::string Config::*member) {
  return [member](Config& c, const JsonView& f) {
    if (auto s = f.as_string(); !s.empty()) c.*member = s;
  };
}

Field percent(int Config::*member) {
  return [member](Config& c, const JsonView& f) {
    auto v = f.as_i32();
    if (v < 0 || v > 100) f.bad(fmt::format("{}: must be 0-100", v));
    c.*member = v;
  };
}

// The fields berthlet reads: KubeletConfiguration's, and berthlet's own ones that the
// kubelet has as flags or constants (staticPodPaths, nodeName, rootDir,
// runtimeRelistPeriod, imageGCPeriod: a kubelet reading the file would warn about them).
const std::map<std::string_view, Field>& fields() {
  static const std::map<std::string_view, Field> table = {
      {"staticPodPath", [](Config& c, const JsonView& f) { c.static_pod_paths = {f.as_string()}; }},
      {"staticPodPaths", [](Config& c, const JsonView& f) { c.static_pod_paths = f.as_string_list(); }},
      {"fileCheckFrequency", duration(&Config::file_check_frequency)},
      {"runtimeRequestTimeout", duration(&Config::runtime_request_timeout)},
      {"runtimeRelistPeriod", duration(&Config::relist_period)},
      {"containerRuntimeEndpoint", string_or_default(&Config::runtime_endpoint)}, // kubeadm writes ""
      {"nodeName", [](Config& c, const JsonView& f) { c.node_name = f.as_string(); }},
      {"address", string_or_default(&Config::address)},
      {"readOnlyPort",
       [](Config& c, const JsonView& f) {
         c.read_only_port = f.as_i32();
         if (c.read_only_port < 0 || c.read_only_port > 65535) f.bad("must be 0-65535");
       }},
      {"podLogsDir", string_or_default(&Config::pod_logs_dir)},
      {"cgroupRoot", string_or_default(&Config::cgroup_root)},
      {"cgroupDriver",
       [](Config& c, const JsonView& f) {
         if (auto s = f.as_string(); !s.empty()) c.cgroup_driver = parse_cgroup_driver(s);
       }},
      // A pointer in the kubelet: present and "" disables DNS from the host's resolver.
      {"resolvConf", [](Config& c, const JsonView& f) { c.resolv_conf = f.as_string(); }},
      {"clusterDNS", [](Config& c, const JsonView& f) { c.cluster_dns = f.as_string_list(); }},
      {"clusterDomain", [](Config& c, const JsonView& f) { c.cluster_domain = f.as_string(); }},
      {"rootDir", string_or_default(&Config::root_dir)},
      {"logging",
       [](Config& c, const JsonView& f) {
         f.expect_object();
         // flushFrequency, vmodule and options are klog's: nothing to flush or filter here.
         if (auto format = f["format"]; format.present()) {
           auto s = format.as_string();
           if (s != "text" && s != "json") format.bad(fmt::format("{:?}: expected text or json", s));
           c.logging_format = s;
         }
         if (auto v = f["verbosity"]; v.present()) {
           c.logging_verbosity = v.as_i32();
           if (c.logging_verbosity < 0) v.bad("must be 0 or more");
         }
       }},
      {"containerLogMaxSize",
       [](Config& c, const JsonView& f) {
         auto s = f.raw().is_number_integer() ? std::to_string(f.as_int()) : f.as_string();
         if (s.empty()) return;
         auto bytes = parse_quantity(s);
         if (bytes <= 0) f.bad(fmt::format("{:?}: must be positive", s));
         c.container_log_max_size = s;
         c.container_log_max_bytes = bytes;
       }},
      {"containerLogMaxFiles",
       [](Config& c, const JsonView& f) {
         c.container_log_max_files = f.as_i32();
         if (c.container_log_max_files < 2) f.bad(fmt::format("{}: must be 2 or more", c.container_log_max_files));
       }},
      {"containerLogMonitorInterval", duration(&Config::container_log_monitor_interval)},
      {"imageGCHighThresholdPercent", percent(&Config::image_gc_high_threshold_percent)},
      {"imageGCLowThresholdPercent", percent(&Config::image_gc_low_threshold_percent)},
      {"imageMinimumGCAge", duration(&Config::image_minimum_gc_age)},
      {"imageGCPeriod", duration(&Config::image_gc_period)},
      {"nodeStatusUpdateFrequency", duration(&Config::node_status_update_frequency)},
  };
  return table;
}

// The line (1-based) of every top-level key. The text already passed yaml_to_json (one
// document, bounded depth and size), so this second parse ends.
std::map<std::string, int> key_lines(const std::string& text) {
  std::map<std::string, int> lines;
  auto root = YAML::Load(text);
  if (!root.IsMap()) return lines;
  for (auto it = root.begin(); it != root.end(); ++it)
    if (it->first.IsScalar()) lines.emplace(it->first.Scalar(), it->first.Mark().line + 1);
  return lines;
}

// The line of statusSinks (index SIZE_MAX) or of a key of statusSinks[index] (of the
// entry itself when the key is not there).
int sink_key_line(const std::string& text, size_t index, const std::string& key) {
  auto root = YAML::Load(text);
  auto list = root["statusSinks"];
  if (!list) return 0;
  if (index == SIZE_MAX || !list.IsSequence() || index >= list.size()) return list.Mark().line + 1;
  auto entry = list[index];
  if (entry.IsMap())
    for (auto it = entry.begin(); it != entry.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->first.Mark().line + 1;
  return entry.Mark().line + 1;
}

} // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  if (text.empty()) fail("duration: empty");
  if (text == "0") return std::chrono::milliseconds(0); // Go's time.ParseDuration accepts a bare 0
  double total_ms = 0;
  size_t i = 0;
  bool negative = text[0] == '-';
  if (negative || text[0] == '+') i++;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) i++;
    if (start == i) fail("duration {:?}: expected a number at {:?}", text, text.substr(start));
    double n = std::stod(std::string(text.substr(start, i - start)));
    size_t ustart = i;
    while (i < text.size() && !((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) i++;
    auto unit = text.substr(ustart, i - ustart);
    double scale;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60000;
    else if (unit == "h") scale = 3600000;
    else if (unit == "us" || unit == "µs") scale = 0.001;
    else if (unit == "ns") scale = 0.000001;
    else fail("duration {:?}: unknown unit {:?} (use ms, s, m or h)", text, unit);
    total_ms += n * scale;
  }
  if (total_ms > 1e12) fail("duration {:?}: too long", text);
  return std::chrono::milliseconds(static_cast<int64_t>(negative ? -total_ms : total_ms));
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  std::string out = ms < 0 ? "-" : "";
  ms = std::abs(ms);
  if (ms % 1000 != 0) return out + fmt::format("{}ms", ms);
  auto s = ms / 1000;
  if (s >= 3600) out += fmt::format("{}h", s / 3600), s %= 3600;
  if (s >= 60) out += fmt::format("{}m", s / 60), s %= 60;
  if (s > 0) out += fmt::format("{}s", s);
  return out;
}

CgroupDriver parse_cgroup_driver(std::string_view text) {
  if (text == "cgroupfs") return CgroupDriver::cgroupfs;
  if (text == "systemd") return CgroupDriver::systemd;
  fail("cgroup driver {:?}: must be cgroupfs or systemd", text);
}

std::vector<std::string> ConfigReport::lines(const std::string& origin) const {
  std::vector<std::string> out;
  if (!ignored.empty())
    out.push_back(fmt::format("config {}: KubeletConfiguration fields berthlet does not implement, ignored: {}",
                              origin, fmt::join(ignored, ", ")));
  if (!unknown.empty()) {
    std::vector<std::string> named;
    for (auto& [key, line] : unknown) named.push_back(fmt::format("{} (line {})", quoted_value(key), line));
    out.push_back(fmt::format("config {}: unknown fields, ignored (a typo?): {}", origin, fmt::join(named, ", ")));
  }
  return out;
}

Config config_from_yaml(const std::string& text, const std::string& origin, ConfigReport* report) {
  Config c;
  auto doc = with_context(origin, [&] {
    if (auto bad = first_invalid_utf8(text)) fail("not valid UTF-8 (byte {})", *bad);
    return yaml_to_json(text);
  });
  auto lines = key_lines(text);
  auto at = [&](const std::string& key) {
    auto it = lines.find(key);
    return it == lines.end() ? origin : fmt::format("{}:{}", origin, it->second);
  };
  JsonView v(doc, "");
  with_context(origin, [&] { v.expect_object(); });
  // As the kubelet: the file must say what it is. (berthlet's files before 0.x said
  // "kind: BerthletConfiguration"; their fields are KubeletConfiguration fields.)
  for (auto [key, want] : {std::pair{"apiVersion", kKubeletConfigApiVersion}, std::pair{"kind", kKubeletConfigKind}}) {
    auto f = v[key];
    if (!f.present()) fail("{}: {}: missing; a berthlet config is a KubeletConfiguration: apiVersion: {}, kind: {}",
                           origin, key, kKubeletConfigApiVersion, kKubeletConfigKind);
    if (!f.raw().is_string() || f.raw().get<std::string>() != want)
      fail("{}: {}: {}: expected {}", at(key), key,
           f.raw().is_string() ? quoted_value(f.raw().get<std::string>()) : f.raw().dump(), want);
  }
  ConfigReport found;
  v.each_member([&](const std::string& key, const JsonView& f) {
    if (key == "apiVersion" || key == "kind") return;
    if (key == "statusSinks") { // its errors name the line of the key inside the list
      if (f.present())
        c.status_sinks = parse_status_sinks(f, origin, [&](size_t i, const std::string& k) {
          return sink_key_line(text, i, k);
        });
      return;
    }
    auto handler = fields().find(key);
    if (handler != fields().end()) {
      // A null value ("key:" or "key: ~") is the field's default, as in Go's decoding.
      if (!f.present()) return;
      try {
        handler->second(c, f);
      } catch (Error& e) {
        if (std::string_view(e.what()).rfind(key, 0) != 0) e.wrap(key);
        e.wrap(at(key));
        throw;
      }
    } else if (kKubeletOnly.count(key)) {
      found.ignored.push_back(key);
    } else {
      // The kubelet's strict decoding only warns about unknown fields and then decodes
      // leniently; berthlet does the same, so a file written for a newer kubelet still
      // starts. The line names each key, with its line, so a typo is seen.
      auto it = lines.find(key);
      found.unknown.emplace_back(key, it == lines.end() ? 0 : it->second);
    }
  });
  std::sort(found.unknown.begin(), found.unknown.end(),
            [](auto& a, auto& b) { return a.second < b.second; });
  if (report) *report = std::move(found);
  return c;
}

Config load_config(const std::string& path, ConfigReport* report) {
  return config_from_yaml(with_context(fmt::format("read config {}", path),
                                      [&] { return read_bounded_file(path, kMaxConfigBytes); }),
                          path, report);
}

void finalize_config(Config& c) {
  if (c.node_name.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) fail_errno("gethostname");
    c.node_name = host;
  }
  // The node name ends every pod's name, which names its log directory: a DNS-1123
  // subdomain as the API server requires (host names are lower-cased as the kubelet does).
  std::transform(c.node_name.begin(), c.node_name.end(), c.node_name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (!valid_dns1123_subdomain(c.node_name))
    fail("nodeName {}: must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')", quoted_value(c.node_name));
  for (auto [what, dir] : {std::pair{"rootDir", &c.root_dir}, std::pair{"podLogsDir", &c.pod_logs_dir}}) {
    if (dir->empty() || (*dir)[0] != '/') fail("{} {}: must be an absolute path", what, quoted_value(*dir));
    for (auto& part : split(*dir, '/'))
      if (part == "..") fail("{} {}: must not contain '..'", what, quoted_value(*dir));
  }
  if (c.static_pod_paths.empty()) fail("staticPodPath: at least one directory is required");
  for (auto& p : c.static_pod_paths)
    if (p.empty() || p[0] != '/') fail("staticPodPath {:?}: must be an absolute path", p);
  if (c.file_check_frequency.count() < 100) fail("fileCheckFrequency: must be at least 100ms");
  if (c.relist_period.count() < 100) fail("runtimeRelistPeriod: must be at least 100ms");
  if (c.container_log_monitor_interval.count() < 100) fail("containerLogMonitorInterval: must be at least 100ms");
  if (c.image_gc_period.count() < 100) fail("imageGCPeriod: must be at least 100ms");
  if (c.node_status_update_frequency.count() < 100) fail("nodeStatusUpdateFrequency: must be at least 100ms");
  // As the kubelet's validation; 100 as the high threshold disables image GC.
  if (c.image_gc_high_threshold_percent != 100 &&
      c.image_gc_low_threshold_percent >= c.image_gc_high_threshold_percent)
    fail("imageGCLowThresholdPercent ({}) must be less than imageGCHighThresholdPercent ({})",
         c.image_gc_low_threshold_percent, c.image_gc_high_threshold_percent);
  if (c.cgroup_root.empty() || c.cgroup_root[0] != '/') fail("cgroupRoot {:?}: must be an absolute path", c.cgroup_root);
  for (auto& part : split(c.cgroup_root, '/'))
    if (part == "..") fail("cgroupRoot {:?}: must not contain '..'", c.cgroup_root);
  // systemd names a slice by its whole path: the root is one slice ("/" or "/x.slice").
  if (c.cgroup_driver == CgroupDriver::systemd && c.cgroup_root != "/" &&
      (c.cgroup_root.find('/', 1) != std::string::npos || !c.cgroup_root.ends_with(".slice")))
    fail("cgroupRoot {:?}: with cgroupDriver systemd it must be \"/\" or one slice (\"/name.slice\")", c.cgroup_root);
  auto ep = c.runtime_endpoint;
  if (ep.starts_with("/")) c.runtime_endpoint = "unix://" + ep;
  else if (!ep.starts_with("unix://")) fail("containerRuntimeEndpoint {:?}: only unix:// endpoints are supported", ep);
}

std::string config_to_yaml(const Config& c) {
  // Strings as JSON strings: valid YAML whatever they hold.
  auto q = [](const std::string& s) { return nlohmann::json(s).dump(); };
  auto list = [&](const std::vector<std::string>& v) {
    std::vector<std::string> items;
    for (auto& s : v) items.push_back(q(s));
    return fmt::format("[{}]", fmt::join(items, ", "));
  };
  std::string out;
  auto line = [&](std::string_view key, const std::string& value) { out += fmt::format("{}: {}\n", key, value); };
  line("apiVersion", kKubeletConfigApiVersion);
  line("kind", kKubeletConfigKind);
  if (c.static_pod_paths.size() == 1) line("staticPodPath", q(c.static_pod_paths[0]));
  else line("staticPodPaths", list(c.static_pod_paths));
  line("fileCheckFrequency", format_duration(c.file_check_frequency));
  line("containerRuntimeEndpoint", q(c.runtime_endpoint));
  line("runtimeRequestTimeout", format_duration(c.runtime_request_timeout));
  line("address", q(c.address));
  line("readOnlyPort", std::to_string(c.read_only_port));
  line("podLogsDir", q(c.pod_logs_dir));
  line("cgroupRoot", q(c.cgroup_root));
  line("cgroupDriver", c.cgroup_driver == CgroupDriver::systemd ? "systemd" : "cgroupfs");
  line("resolvConf", q(c.resolv_conf));
  line("clusterDNS", list(c.cluster_dns));
  line("clusterDomain", q(c.cluster_domain));
  line("containerLogMaxSize", q(c.container_log_max_size));
  line("containerLogMaxFiles", std::to_string(c.container_log_max_files));
  line("containerLogMonitorInterval", format_duration(c.container_log_monitor_interval));
  line("imageGCHighThresholdPercent", std::to_string(c.image_gc_high_threshold_percent));
  line("imageGCLowThresholdPercent", std::to_string(c.image_gc_low_threshold_percent));
  line("imageMinimumGCAge", format_duration(c.image_minimum_gc_age));
  line("nodeStatusUpdateFrequency", format_duration(c.node_status_update_frequency));
  out += fmt::format("logging:\n  format: {}\n  verbosity: {}\n", c.logging_format, c.logging_verbosity);
  out += "# berthlet's own fields (kubelet flags or constants)\n";
  line("nodeName", q(c.node_name));
  line("rootDir", q(c.root_dir));
  line("runtimeRelistPeriod", format_duration(c.relist_period));
  line("imageGCPeriod", format_duration(c.image_gc_period));
  line("statusSinks", status_sinks_to_json(c.status_sinks).dump());
  return out;
}

} // namespace berth::agent
