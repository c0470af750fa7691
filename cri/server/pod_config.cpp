#include "cri/server/pod_config.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cri {
namespace {

using runtime::v1::NamespaceMode;

constexpr size_t kMaxName = 253;
constexpr size_t kMaxPath = 4096;
constexpr int kMaxMapEntries = 1024;
constexpr size_t kMaxMapKey = 1024, kMaxMapValue = 64 << 10;

// Identity strings end up in names, CNI_ARGS and log lines: printable, no separators
// that those formats use.
void check_identity(const std::string& v, const char* field, bool required = true) {
  if (v.empty()) {
    if (required) fail_code(EINVAL, "{}: must not be empty", field);
    return;
  }
  if (v.size() > kMaxName) fail_code(EINVAL, "{}: longer than {} bytes", field, kMaxName);
  for (unsigned char c : v)
    if (c <= ' ' || c >= 0x7f || c == '/' || c == ';' || c == '=' || c == ',' || c == '\\')
      fail_code(EINVAL, "{}: {} has a character that is not allowed", field, quoted_value(v));
}

void check_path(const std::string& p, const char* field, bool absolute) {
  if (p.size() > kMaxPath) fail_code(EINVAL, "{}: longer than {} bytes", field, kMaxPath);
  if (p.find('\0') != std::string::npos) fail_code(EINVAL, "{}: contains a NUL byte", field);
  if (absolute && (p.empty() || p[0] != '/')) fail_code(EINVAL, "{}: \"{}\" is not an absolute path", field, p);
}

template <typename Map>
void check_map(const Map& m, const char* field) {
  if (m.size() > kMaxMapEntries) fail_code(EINVAL, "{}: more than {} entries", field, kMaxMapEntries);
  for (auto& [k, v] : m) {
    if (k.empty() || k.size() > kMaxMapKey) fail_code(EINVAL, "{}: key \"{}\" is empty or too long", field, k.substr(0, 64));
    if (v.size() > kMaxMapValue) fail_code(EINVAL, "{}[{}]: value longer than {} bytes", field, k, kMaxMapValue);
  }
}

void check_hostname(const std::string& h) {
  if (h.empty()) return;
  if (h.size() > 64) fail_code(EINVAL, "config.hostname: \"{}\" is longer than 64 bytes", h.substr(0, 80));
  for (char c : h)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
      fail_code(EINVAL, "config.hostname: \"{}\" is not a valid host name", h);
}

void check_ip(const std::string& ip, const std::string& field) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1)
    fail_code(EINVAL, "{}: \"{}\" is not an IP address", field, ip.substr(0, 64));
}

void check_mode(NamespaceMode m, const char* field, std::initializer_list<NamespaceMode> allowed) {
  for (auto a : allowed)
    if (m == a) return;
  fail_code(EINVAL, "{}: namespace mode {} is not supported here", field, runtime::v1::NamespaceMode_Name(m));
}

} // namespace

PodNamespaces pod_namespaces(const runtime::v1::PodSandboxConfig& config) {
  const auto& ns = config.linux().security_context().namespace_options();
  PodNamespaces p;
  p.host_network = ns.network() == runtime::v1::NODE;
  p.host_ipc = ns.ipc() == runtime::v1::NODE;
  p.host_pid = ns.pid() == runtime::v1::NODE;
  p.shared_pid = ns.pid() == runtime::v1::POD;
  return p;
}

std::string sandbox_name(const runtime::v1::PodSandboxMetadata& m) {
  return fmt::format("{}_{}_{}_{}", m.name(), m.namespace_(), m.uid(), m.attempt());
}

std::string container_name(const runtime::v1::ContainerMetadata& c, const runtime::v1::PodSandboxMetadata& pod) {
  return fmt::format("{}_{}_{}_{}_{}", c.name(), pod.name(), pod.namespace_(), pod.uid(), c.attempt());
}

void validate_sandbox_config(const runtime::v1::PodSandboxConfig& config, CgroupDriver driver) {
  if (!config.has_metadata()) fail_code(EINVAL, "config.metadata: missing");
  check_identity(config.metadata().name(), "config.metadata.name");
  check_identity(config.metadata().namespace_(), "config.metadata.namespace");
  check_identity(config.metadata().uid(), "config.metadata.uid");
  check_hostname(config.hostname());
  if (!config.log_directory().empty()) check_path(config.log_directory(), "config.log_directory", true);
  check_map(config.labels(), "config.labels");
  check_map(config.annotations(), "config.annotations");
  int i = 0;
  for (const auto& p : config.port_mappings()) {
    std::string f = fmt::format("config.port_mappings[{}]", i++);
    if (p.container_port() <= 0 || p.container_port() > 65535)
      fail_code(EINVAL, "{}.container_port: {} is not a port", f, p.container_port());
    if (p.host_port() < 0 || p.host_port() > 65535) fail_code(EINVAL, "{}.host_port: {} is not a port", f, p.host_port());
    if (!runtime::v1::Protocol_IsValid(p.protocol())) fail_code(EINVAL, "{}.protocol: unknown protocol", f);
    if (!p.host_ip().empty()) check_ip(p.host_ip(), f + ".host_ip");
  }
  if (i > 1024) fail_code(EINVAL, "config.port_mappings: more than 1024 entries");
  const auto& linux = config.linux();
  const std::string& parent = linux.cgroup_parent();
  check_path(parent, "config.linux.cgroup_parent", false);
  if (parent.find("..") != std::string::npos)
    fail_code(EINVAL, "config.linux.cgroup_parent: \"{}\" must not contain \"..\"", parent);
  if (driver == CgroupDriver::systemd && !parent.empty() &&
      (parent.find('/') != std::string::npos || parent.size() < 7 || parent.substr(parent.size() - 6) != ".slice"))
    fail_code(EINVAL, "config.linux.cgroup_parent: \"{}\" is not a systemd slice name (the cgroup driver is systemd)",
              parent);
  if (driver == CgroupDriver::cgroupfs && parent.size() > 6 && parent.substr(parent.size() - 6) == ".slice" &&
      parent.find('/') == std::string::npos)
    fail_code(EINVAL, "config.linux.cgroup_parent: \"{}\" is a systemd slice but the cgroup driver is cgroupfs", parent);
  check_map(linux.sysctls(), "config.linux.sysctls");
  const auto& ns = linux.security_context().namespace_options();
  check_mode(ns.network(), "config.linux.security_context.namespace_options.network", {runtime::v1::POD, runtime::v1::NODE});
  check_mode(ns.ipc(), "config.linux.security_context.namespace_options.ipc", {runtime::v1::POD, runtime::v1::NODE});
  check_mode(ns.pid(), "config.linux.security_context.namespace_options.pid",
             {runtime::v1::POD, runtime::v1::CONTAINER, runtime::v1::NODE});
  if (ns.has_userns_options()) {
    const auto& u = ns.userns_options();
    bool mapped = u.uids_size() > 0 || u.gids_size() > 0;
    if (u.mode() == runtime::v1::CONTAINER || u.mode() == runtime::v1::TARGET || (u.mode() == runtime::v1::POD && mapped))
      fail_code(ENOTSUP, "config.linux.security_context.namespace_options.userns_options: user namespaces are not "
                         "supported by berthd");
  }
}

void validate_container_config(const runtime::v1::ContainerConfig& config) {
  if (!config.has_metadata()) fail_code(EINVAL, "config.metadata: missing");
  check_identity(config.metadata().name(), "config.metadata.name");
  if (config.image().image().empty()) fail_code(EINVAL, "config.image.image: must not be empty");
  if (config.image().image().size() > 4096) fail_code(EINVAL, "config.image.image: longer than 4096 bytes");
  const std::string& log = config.log_path();
  check_path(log, "config.log_path", false);
  if (!log.empty() && log[0] == '/') fail_code(EINVAL, "config.log_path: \"{}\" must be relative to the pod's log_directory", log);
  for (auto& part : split(log, '/'))
    if (part == "..") fail_code(EINVAL, "config.log_path: \"{}\" must not contain \"..\"", log);
  if (!config.working_dir().empty()) check_path(config.working_dir(), "config.working_dir", true);
  check_map(config.labels(), "config.labels");
  check_map(config.annotations(), "config.annotations");
  if (config.command_size() + config.args_size() > 65536) fail_code(EINVAL, "config.command/args: too many arguments");
  int i = 0;
  for (const auto& m : config.mounts()) {
    std::string f = fmt::format("config.mounts[{}]", i++);
    check_path(m.container_path(), (f + ".container_path").c_str(), true);
    check_path(m.host_path(), (f + ".host_path").c_str(), !m.has_image());
    if (m.has_image() && !m.image().image().empty())
      fail_code(ENOTSUP, "{}.image: image volumes are not supported by berthd", f);
  }
  i = 0;
  for (const auto& d : config.devices()) {
    std::string f = fmt::format("config.devices[{}]", i++);
    check_path(d.container_path(), (f + ".container_path").c_str(), true);
    check_path(d.host_path(), (f + ".host_path").c_str(), true);
  }
  if (config.cdi_devices_size() > 0) fail_code(ENOTSUP, "config.CDI_devices: CDI devices are not supported by berthd");
  const auto& ns = config.linux().security_context().namespace_options();
  check_mode(ns.network(), "config.linux.security_context.namespace_options.network", {runtime::v1::POD, runtime::v1::NODE});
  check_mode(ns.ipc(), "config.linux.security_context.namespace_options.ipc", {runtime::v1::POD, runtime::v1::NODE});
  if (ns.pid() == runtime::v1::TARGET && ns.target_id().empty())
    fail_code(EINVAL, "config.linux.security_context.namespace_options.target_id: must name a container for TARGET");
}

std::vector<PortMappingSpec> port_mappings(const runtime::v1::PodSandboxConfig& config) {
  std::vector<PortMappingSpec> out;
  for (const auto& p : config.port_mappings()) {
    PortMappingSpec m;
    m.protocol = p.protocol() == runtime::v1::UDP ? "udp" : p.protocol() == runtime::v1::SCTP ? "sctp" : "tcp";
    m.container_port = p.container_port();
    m.host_port = p.host_port();
    m.host_ip = p.host_ip();
    out.push_back(m);
  }
  return out;
}

PodIdentity pod_identity(const runtime::v1::PodSandboxConfig& config) {
  return {config.metadata().name(), config.metadata().namespace_(), config.metadata().uid()};
}

} // namespace berth::cri
