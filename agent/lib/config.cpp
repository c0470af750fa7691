#include "agent/lib/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "agent/lib/manifest.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::agent {

std::chrono::milliseconds parse_duration(std::string_view text) {
  if (text.empty()) fail("duration: empty");
  double total_ms = 0;
  size_t i = 0;
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
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

CgroupDriver parse_cgroup_driver(std::string_view text) {
  if (text == "cgroupfs") return CgroupDriver::cgroupfs;
  if (text == "systemd") return CgroupDriver::systemd;
  fail("cgroup driver {:?}: must be cgroupfs or systemd", text);
}

Config config_from_yaml(const std::string& text, const std::string& origin) {
  return with_context(origin, [&] {
    Config c;
    auto doc = yaml_to_json(text);
    JsonView v(doc, "");
    v.expect_object();
    static const std::vector<std::string> known = {
        "kind", "apiVersion", "staticPodPath", "staticPodPaths", "fileCheckFrequency",
        "containerRuntimeEndpoint", "runtimeRequestTimeout", "nodeName", "address", "readOnlyPort",
        "podLogsDir", "cgroupRoot", "cgroupDriver", "resolvConf", "clusterDNS", "clusterDomain", "rootDir",
        "runtimeRelistPeriod"};
    v.each_member([&](const std::string& key, const JsonView& f) {
      if (std::find(known.begin(), known.end(), key) == known.end()) f.bad("unknown field");
    });
    auto duration = [&](const char* key, std::chrono::milliseconds& out) {
      auto f = v[key];
      if (!f.present()) return;
      try {
        out = parse_duration(f.as_string());
      } catch (Error& e) {
        e.wrap(f.path());
        throw;
      }
    };
    if (auto one = v.opt_string("staticPodPath")) c.static_pod_paths = {*one};
    if (v["staticPodPaths"].present()) c.static_pod_paths = v.string_list("staticPodPaths");
    duration("fileCheckFrequency", c.file_check_frequency);
    duration("runtimeRequestTimeout", c.runtime_request_timeout);
    duration("runtimeRelistPeriod", c.relist_period);
    c.runtime_endpoint = v.opt_string("containerRuntimeEndpoint").value_or(c.runtime_endpoint);
    c.node_name = v.opt_string("nodeName").value_or("");
    c.address = v.opt_string("address").value_or(c.address);
    if (auto p = v["readOnlyPort"]; p.present()) {
      c.read_only_port = p.as_i32();
      if (c.read_only_port < 0 || c.read_only_port > 65535) p.bad("must be 0-65535");
    }
    c.pod_logs_dir = v.opt_string("podLogsDir").value_or(c.pod_logs_dir);
    c.cgroup_root = v.opt_string("cgroupRoot").value_or(c.cgroup_root);
    if (auto d = v["cgroupDriver"]; d.present()) {
      try {
        c.cgroup_driver = parse_cgroup_driver(d.as_string());
      } catch (Error& e) {
        e.wrap(d.path());
        throw;
      }
    }
    c.resolv_conf = v.opt_string("resolvConf").value_or(c.resolv_conf);
    c.cluster_dns = v.string_list("clusterDNS");
    c.cluster_domain = v.opt_string("clusterDomain").value_or("");
    c.root_dir = v.opt_string("rootDir").value_or(c.root_dir);
    return c;
  });
}

Config load_config(const std::string& path) {
  return config_from_yaml(with_context(fmt::format("read config {}", path),
                                      [&] { return read_bounded_file(path, kMaxManifestBytes); }),
                          path);
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

} // namespace berth::agent
