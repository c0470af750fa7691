#include "agent/lib/cri_convert.hpp"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "agent/lib/pod_cgroup.hpp"
#include "common/fs.hpp"

namespace berth::agent {
namespace {

constexpr int64_t kCpuPeriod = 100000;
constexpr int64_t kMinShares = 2;
constexpr int64_t kMinQuota = 1000;

// The kubelet's defaults for non-privileged containers (the runtime applies none itself).
const char* const kMaskedPaths[] = {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                    "/proc/sched_debug", "/proc/scsi", "/sys/firmware"};
const char* const kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};

void set_seccomp(const Config& cfg, cri::SecurityProfile* p, const std::string& type, const std::string& localhost) {
  // The kubelet's default is Unconfined when nothing is set (SeccompDefault off).
  if (type == "RuntimeDefault") {
    p->set_profile_type(cri::SecurityProfile::RuntimeDefault);
  } else if (type == "Localhost") {
    p->set_profile_type(cri::SecurityProfile::Localhost);
    // As the kubelet: the runtime gets an absolute path under <rootDir>/seccomp (the manifest's
    // relative, '..'-free path was checked by parse_pod).
    p->set_localhost_ref(path_join(path_join(cfg.root_dir, "seccomp"), localhost));
  } else {
    p->set_profile_type(cri::SecurityProfile::Unconfined);
  }
}

cri::Protocol protocol(const std::string& p) {
  return p == "UDP" ? cri::UDP : p == "SCTP" ? cri::SCTP : cri::TCP;
}

struct ResolvConf {
  std::vector<std::string> servers, searches, options;
};

ResolvConf read_resolv_conf(const std::string& path) {
  ResolvConf rc;
  auto text = try_read_file(path);
  if (!text) return rc;
  for (auto& line : split(*text, '\n')) {
    auto fields = split(std::string(trim(line)), ' ');
    if (fields.empty() || fields[0][0] == '#' || fields[0][0] == ';') continue;
    if (fields[0] == "nameserver" && fields.size() > 1) rc.servers.push_back(fields[1]);
    else if (fields[0] == "search") rc.searches.assign(fields.begin() + 1, fields.end());
    else if (fields[0] == "options") rc.options.insert(rc.options.end(), fields.begin() + 1, fields.end());
  }
  return rc;
}

cri::DNSConfig dns_config(const Config& cfg, const Pod& pod) {
  auto& s = pod.spec;
  std::string policy = s.dns_policy;
  // ClusterFirst on the host network means the node's DNS; without cluster DNS servers
  // the kubelet falls back to the node's resolv.conf as well.
  if ((policy == "ClusterFirst" && s.host_network) ||
      ((policy == "ClusterFirst" || policy == "ClusterFirstWithHostNet") && cfg.cluster_dns.empty()))
    policy = "Default";
  ResolvConf rc;
  if (policy == "Default") {
    rc = read_resolv_conf(cfg.resolv_conf);
  } else if (policy != "None") {
    rc.servers = cfg.cluster_dns;
    if (!cfg.cluster_domain.empty())
      rc.searches = {pod.namespace_ + ".svc." + cfg.cluster_domain, "svc." + cfg.cluster_domain, cfg.cluster_domain};
    auto host = read_resolv_conf(cfg.resolv_conf);
    rc.searches.insert(rc.searches.end(), host.searches.begin(), host.searches.end());
    rc.options = {"ndots:5"};
  }
  if (s.dns_config) {
    auto& d = *s.dns_config;
    rc.servers.insert(rc.servers.end(), d.nameservers.begin(), d.nameservers.end());
    rc.searches.insert(rc.searches.end(), d.searches.begin(), d.searches.end());
    for (auto& [name, value] : d.options) {
      std::erase_if(rc.options, [&](const std::string& o) { return o.substr(0, o.find(':')) == name; });
      rc.options.push_back(value.empty() ? name : name + ":" + value);
    }
  }
  cri::DNSConfig out;
  for (auto& x : rc.servers) out.add_servers(x);
  for (auto& x : rc.searches) out.add_searches(x);
  for (auto& x : rc.options) out.add_options(x);
  return out;
}

std::string truncate_hostname(std::string h) {
  if (h.size() > 63) h.resize(63);
  while (!h.empty() && (h.back() == '-' || h.back() == '.')) h.pop_back();
  return h;
}

} // namespace

CpuConversion convert_cpu(const Resources& r) {
  CpuConversion c;
  auto request = r.cpu_request_milli ? r.cpu_request_milli : r.cpu_limit_milli;
  c.shares = request ? std::max(*request * 1024 / 1000, kMinShares) : kMinShares;
  if (r.cpu_limit_milli) {
    c.period = kCpuPeriod;
    c.quota = std::max(*r.cpu_limit_milli * kCpuPeriod / 1000, kMinQuota);
  }
  return c;
}

int64_t oom_score_adj(const std::string& qos, const Resources& r, int64_t memory_capacity) {
  if (qos == "Guaranteed") return -997;
  if (qos == "BestEffort") return 1000;
  int64_t request = r.memory_request.value_or(0);
  int64_t adj = memory_capacity > 0 ? 1000 - (1000 * request) / memory_capacity : 1000;
  return std::clamp<int64_t>(adj, 2, 999);
}

std::string pod_log_dir(const Config& cfg, const Pod& pod) {
  return path_join(cfg.pod_logs_dir, pod.namespace_ + "_" + pod.name + "_" + pod.uid);
}

cri::PodSandboxConfig sandbox_config(const Config& cfg, const Pod& pod, uint32_t attempt) {
  cri::PodSandboxConfig sc;
  auto* md = sc.mutable_metadata();
  md->set_name(pod.name);
  md->set_uid(pod.uid);
  md->set_namespace_(pod.namespace_);
  md->set_attempt(attempt);
  auto& s = pod.spec;
  if (!s.host_network) sc.set_hostname(truncate_hostname(s.hostname.empty() ? pod.name : s.hostname));
  sc.set_log_directory(pod_log_dir(cfg, pod));
  *sc.mutable_dns_config() = dns_config(cfg, pod);
  for (auto& c : s.containers)
    for (auto& p : c.ports) {
      if (p.host_port == 0) continue;
      auto* pm = sc.add_port_mappings();
      pm->set_protocol(protocol(p.protocol));
      pm->set_container_port(p.container_port);
      pm->set_host_port(p.host_port);
      pm->set_host_ip(p.host_ip);
    }
  auto& labels = *sc.mutable_labels();
  for (auto& [k, v] : pod.labels) labels[k] = v;
  labels[kPodNameLabel] = pod.name;
  labels[kPodNamespaceLabel] = pod.namespace_;
  labels[kPodUidLabel] = pod.uid;
  auto& annotations = *sc.mutable_annotations();
  for (auto& [k, v] : pod.annotations) annotations[k] = v;

  auto* linux = sc.mutable_linux();
  linux->set_cgroup_parent(pod_cgroup_parent(cfg, pod));
  for (auto& x : s.security_context.sysctls) (*linux->mutable_sysctls())[x.name] = x.value;
  auto* sec = linux->mutable_security_context();
  auto* ns = sec->mutable_namespace_options();
  ns->set_network(s.host_network ? cri::NODE : cri::POD);
  ns->set_pid(s.host_pid ? cri::NODE : cri::CONTAINER);
  ns->set_ipc(s.host_ipc ? cri::NODE : cri::POD);
  auto& psc = s.security_context;
  if (psc.run_as_user) sec->mutable_run_as_user()->set_value(*psc.run_as_user);
  if (psc.run_as_group) sec->mutable_run_as_group()->set_value(*psc.run_as_group);
  for (auto g : psc.supplemental_groups) sec->add_supplemental_groups(g);
  if (psc.fs_group) sec->add_supplemental_groups(*psc.fs_group);
  bool privileged = false;
  for (auto* list : {&s.init_containers, &s.containers})
    for (auto& c : *list) privileged |= c.security_context.privileged;
  sec->set_privileged(privileged);
  set_seccomp(cfg, sec->mutable_seccomp(), psc.seccomp_type, psc.seccomp_localhost_profile);
  return sc;
}

std::string expand_vars(const std::string& in, const std::vector<std::pair<std::string, std::string>>& env) {
  std::string out;
  for (size_t i = 0; i < in.size(); i++) {
    if (in[i] != '$' || i + 1 >= in.size()) {
      out += in[i];
      continue;
    }
    if (in[i + 1] == '$') { // $$ escapes a literal $
      out += '$';
      i++;
      continue;
    }
    if (in[i + 1] == '(') {
      auto close = in.find(')', i + 2);
      if (close != std::string::npos) {
        std::string name = in.substr(i + 2, close - i - 2);
        auto it = std::find_if(env.rbegin(), env.rend(), [&](auto& kv) { return kv.first == name; });
        if (it != env.rend()) {
          out += it->second;
          i = close;
          continue;
        }
      }
    }
    out += in[i];
  }
  return out;
}

cri::ContainerConfig container_config(const Config& cfg, const Pod& pod, const Container& c, uint32_t attempt,
                                      const PodRuntimeInfo& info, const std::vector<cri::Mount>& mounts) {
  cri::ContainerConfig cc;
  cc.mutable_metadata()->set_name(c.name);
  cc.mutable_metadata()->set_attempt(attempt);
  cc.mutable_image()->set_image(c.image);

  std::vector<std::pair<std::string, std::string>> env;
  for (auto& e : c.env) {
    std::string value = e.value;
    if (!e.field_path.empty()) {
      if (e.field_path == "metadata.name") value = pod.name;
      else if (e.field_path == "metadata.namespace") value = pod.namespace_;
      else if (e.field_path == "metadata.uid") value = pod.uid;
      else if (e.field_path == "spec.nodeName") value = info.node_name;
      else if (e.field_path == "spec.serviceAccountName") value = "";
      else if (e.field_path == "status.hostIP") value = info.host_ip;
      else value = info.pod_ip; // status.podIP, status.podIPs
    } else {
      value = expand_vars(value, env);
    }
    env.emplace_back(e.name, value);
  }
  for (auto& x : c.command) cc.add_command(expand_vars(x, env));
  for (auto& x : c.args) cc.add_args(expand_vars(x, env));
  cc.set_working_dir(c.working_dir);
  for (auto& [k, v] : env) {
    auto* kv = cc.add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  for (auto& m : mounts) *cc.add_mounts() = m;

  auto& labels = *cc.mutable_labels();
  labels[kPodNameLabel] = pod.name;
  labels[kPodNamespaceLabel] = pod.namespace_;
  labels[kPodUidLabel] = pod.uid;
  labels[kContainerNameLabel] = c.name;
  auto& ann = *cc.mutable_annotations();
  ann[kContainerHashAnnotation] = c.hash;
  ann[kRestartCountAnnotation] = std::to_string(attempt);
  ann[kGracePeriodAnnotation] = std::to_string(pod.spec.termination_grace_period_seconds);
  ann["io.kubernetes.container.terminationMessagePath"] = c.termination_message_path;
  ann["io.kubernetes.container.terminationMessagePolicy"] = "File";
  cc.set_log_path(fmt::format("{}/{}.log", c.name, attempt));
  cc.set_tty(c.tty);
  cc.set_stdin(c.stdin_open);

  auto* linux = cc.mutable_linux();
  auto* res = linux->mutable_resources();
  auto cpu = convert_cpu(c.resources);
  res->set_cpu_shares(cpu.shares);
  res->set_cpu_quota(cpu.quota);
  res->set_cpu_period(cpu.period);
  if (c.resources.memory_limit) res->set_memory_limit_in_bytes(*c.resources.memory_limit);
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  res->set_oom_score_adj(oom_score_adj(qos_class(pod.spec), c.resources, static_cast<int64_t>(pages) * page));

  auto* sec = linux->mutable_security_context();
  auto& s = c.security_context;
  auto& psc = pod.spec.security_context;
  auto* ns = sec->mutable_namespace_options();
  ns->set_network(pod.spec.host_network ? cri::NODE : cri::POD);
  ns->set_pid(pod.spec.host_pid ? cri::NODE : cri::CONTAINER);
  ns->set_ipc(pod.spec.host_ipc ? cri::NODE : cri::POD);
  auto uid = s.run_as_user ? s.run_as_user : psc.run_as_user;
  auto gid = s.run_as_group ? s.run_as_group : psc.run_as_group;
  if (uid) sec->mutable_run_as_user()->set_value(*uid);
  if (gid) sec->mutable_run_as_group()->set_value(*gid);
  for (auto g : psc.supplemental_groups) sec->add_supplemental_groups(g);
  if (psc.fs_group) sec->add_supplemental_groups(*psc.fs_group);
  sec->set_privileged(s.privileged);
  for (auto& cap : s.cap_add) sec->mutable_capabilities()->add_add_capabilities(cap);
  for (auto& cap : s.cap_drop) sec->mutable_capabilities()->add_drop_capabilities(cap);
  sec->set_readonly_rootfs(s.read_only_root_filesystem);
  // allowPrivilegeEscalation defaults to true; false sets no_new_privs.
  sec->set_no_new_privs(s.allow_privilege_escalation.has_value() && !*s.allow_privilege_escalation && !s.privileged);
  if (!s.privileged) {
    for (auto* p : kMaskedPaths) sec->add_masked_paths(p);
    for (auto* p : kReadonlyPaths) sec->add_readonly_paths(p);
  }
  if (!s.seccomp_type.empty()) set_seccomp(cfg, sec->mutable_seccomp(), s.seccomp_type, s.seccomp_localhost_profile);
  else set_seccomp(cfg, sec->mutable_seccomp(), psc.seccomp_type, psc.seccomp_localhost_profile);
  return cc;
}

} // namespace berth::agent
