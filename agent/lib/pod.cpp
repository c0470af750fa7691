#include "agent/lib/pod.hpp"

#include <set>

#include "agent/lib/quantity.hpp"
#include "agent/lib/hash.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::agent {
namespace {

// Fields of the Pod API that change what runs but that berthlet cannot honour.
const std::set<std::string, std::less<>> kUnsupportedSpec = {
    "ephemeralContainers", "readinessGates", "resourceClaims", "schedulingGates", "os",
    "hostUsers", "shareProcessNamespace", "setHostnameAsFQDN", "hostAliases", "runtimeClassName",
    "overhead", "topologySpreadConstraints"};
const std::set<std::string, std::less<>> kUnsupportedContainer = {
    "envFrom", "volumeDevices", "resizePolicy", "restartPolicy", "stdinOnce"};

void reject_unsupported(const JsonView& obj, const std::set<std::string, std::less<>>& names) {
  obj.each_member([&](const std::string& key, const JsonView& v) {
    if (names.count(key) && v.present()) v.bad("not supported by berthlet");
  });
}

bool ascii_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool dns1123_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return s.front() != '-' && s.back() != '-';
}

bool dns1123_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!dns1123_label(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A relative path that stays below where it is joined (Kubernetes' validateLocalDescendingPath):
// not absolute, no ".." component, no NUL (which would cut the path short in a syscall).
void check_descending_path(const JsonView& v, const std::string& p) {
  if (p.find('\0') != std::string::npos) v.bad("must not contain NUL");
  if (p.starts_with("/")) v.bad("must be a relative path");
  for (auto& part : split(p, '/'))
    if (part == "..") v.bad("must not contain '..'");
}

// An absolute host path without ".." components (Kubernetes' validatePathNoBacksteps).
void check_host_path(const JsonView& v, const std::string& p) {
  if (p.find('\0') != std::string::npos) v.bad("must not contain NUL");
  if (!p.starts_with("/")) v.bad("must be an absolute path");
  for (auto& part : split(p, '/'))
    if (part == "..") v.bad("must not contain '..'");
}

// Kubernetes' sysctl name: dot- or slash-separated segments of [a-z0-9_-], at most 253.
bool valid_sysctl_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t end = s.find_first_of("./", start);
    auto seg = s.substr(start, end == std::string_view::npos ? end : end - start);
    if (seg.empty()) return false;
    for (char c : seg)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
    if (!ascii_alnum(seg.front()) || !ascii_alnum(seg.back())) return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

std::string required_string(const JsonView& v) {
  if (!v.present()) v.bad("required");
  auto s = v.as_string();
  if (s.empty()) v.bad("required");
  return s;
}

int int_field(const JsonView& obj, std::string_view key, int def, int min) {
  auto v = obj[key];
  if (!v.present()) return def;
  int n = v.as_i32();
  if (n < min) v.bad(fmt::format("must be at least {}", min));
  return n;
}

// An IntOrString port: a number, or the name of one of the container's ports.
int port_field(const JsonView& v, const std::vector<ContainerPort>& ports) {
  if (!v.present()) v.bad("required");
  if (v.raw().is_string()) {
    auto name = v.as_string();
    for (auto& p : ports)
      if (p.name == name) return p.container_port;
    if (auto n = parse_int(name); n) return static_cast<int>(*n);
    v.bad(fmt::format("no container port named {:?}", name));
  }
  int n = v.as_i32();
  if (n < 1 || n > 65535) v.bad(fmt::format("port {} out of range 1-65535", n));
  return n;
}

Handler parse_handler(const JsonView& v, bool probe, const std::vector<ContainerPort>& ports) {
  Handler h;
  int kinds = 0;
  if (auto e = v["exec"]; e.present()) {
    kinds++;
    h.kind = Handler::Kind::exec;
    h.exec.command = e.string_list("command");
    if (h.exec.command.empty()) e["command"].bad("required");
  }
  if (auto g = v["httpGet"]; g.present()) {
    kinds++;
    h.kind = Handler::Kind::http_get;
    h.http_get.path = g.opt_string("path").value_or("/");
    if (h.http_get.path.empty() || h.http_get.path[0] != '/') h.http_get.path = "/" + h.http_get.path;
    h.http_get.port = port_field(g["port"], ports);
    h.http_get.host = g.opt_string("host").value_or("");
    h.http_get.scheme = g.opt_string("scheme").value_or("HTTP");
    if (h.http_get.scheme != "HTTP" && h.http_get.scheme != "HTTPS")
      g["scheme"].bad("must be HTTP or HTTPS");
    g["httpHeaders"].each([&](const JsonView& hv) {
      h.http_get.headers.emplace_back(required_string(hv["name"]), hv.opt_string("value").value_or(""));
    });
  }
  if (auto t = v["tcpSocket"]; t.present()) {
    kinds++;
    if (!probe) t.bad("tcpSocket lifecycle handlers are not supported");
    h.kind = Handler::Kind::tcp_socket;
    h.tcp_socket.port = port_field(t["port"], ports);
    h.tcp_socket.host = t.opt_string("host").value_or("");
  }
  if (auto g = v["grpc"]; g.present()) {
    kinds++;
    if (!probe) g.bad("grpc lifecycle handlers are not supported");
    h.kind = Handler::Kind::grpc;
    h.grpc.port = port_field(g["port"], ports);
    h.grpc.service = g.opt_string("service").value_or("");
  }
  if (auto s = v["sleep"]; s.present()) s.bad("not supported by berthlet");
  if (kinds == 0) v.bad("one handler (exec, httpGet, tcpSocket or grpc) is required");
  if (kinds > 1) v.bad("only one handler may be given");
  return h;
}

std::optional<Probe> parse_probe(const JsonView& v, const std::vector<ContainerPort>& ports,
                                 bool single_success) {
  if (!v.present()) return std::nullopt;
  Probe p;
  p.handler = parse_handler(v, true, ports);
  p.initial_delay_seconds = int_field(v, "initialDelaySeconds", 0, 0);
  p.period_seconds = int_field(v, "periodSeconds", 10, 1);
  p.timeout_seconds = int_field(v, "timeoutSeconds", 1, 1);
  p.success_threshold = int_field(v, "successThreshold", 1, 1);
  p.failure_threshold = int_field(v, "failureThreshold", 3, 1);
  if (single_success && p.success_threshold != 1) v["successThreshold"].bad("must be 1");
  return p;
}

std::string seccomp_type(const JsonView& sp, std::string& localhost) {
  if (!sp.present()) return "";
  auto type = required_string(sp["type"]);
  if (type != "RuntimeDefault" && type != "Unconfined" && type != "Localhost")
    sp["type"].bad(fmt::format("unsupported seccomp profile type {:?}", type));
  if (type == "Localhost") {
    // Relative to <rootDir>/seccomp, as the kubelet resolves it under its seccomp root.
    localhost = required_string(sp["localhostProfile"]);
    check_descending_path(sp["localhostProfile"], localhost);
  }
  return type;
}

Resources parse_resources(const JsonView& v) {
  Resources r;
  auto quantity = [](const JsonView& q, bool milli) -> std::optional<int64_t> {
    if (!q.present()) return std::nullopt;
    std::string text = q.raw().is_number() ? q.raw().dump() : q.as_string();
    try {
      int64_t n = milli ? parse_quantity_milli(text) : parse_quantity(text);
      if (n < 0) q.bad("must not be negative");
      return n;
    } catch (Error& e) {
      e.wrap(q.path());
      throw;
    }
  };
  for (auto part : {"requests", "limits"}) {
    v[part].each_member([&](const std::string& name, const JsonView& q) {
      if (name != "cpu" && name != "memory" && name != "ephemeral-storage")
        q.bad("unsupported resource (cpu, memory and ephemeral-storage are)");
    });
  }
  r.cpu_request_milli = quantity(v["requests"]["cpu"], true);
  r.cpu_limit_milli = quantity(v["limits"]["cpu"], true);
  r.memory_request = quantity(v["requests"]["memory"], false);
  r.memory_limit = quantity(v["limits"]["memory"], false);
  // The API server defaults requests to limits when only limits are given.
  if (!r.cpu_request_milli) r.cpu_request_milli = r.cpu_limit_milli;
  if (!r.memory_request) r.memory_request = r.memory_limit;
  return r;
}

std::string default_pull_policy(const std::string& image) {
  if (image.find('@') != std::string::npos) return "IfNotPresent";
  auto slash = image.rfind('/');
  auto colon = image.rfind(':');
  bool tagged = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (!tagged || image.substr(colon + 1) == "latest") return "Always";
  return "IfNotPresent";
}

Container parse_container(const JsonView& v, bool init) {
  v.expect_object();
  reject_unsupported(v, kUnsupportedContainer);
  Container c;
  c.name = required_string(v["name"]);
  if (!dns1123_label(c.name)) v["name"].bad(fmt::format("{:?} is not a DNS-1123 label", c.name));
  c.image = required_string(v["image"]);
  c.image_pull_policy = v.opt_string("imagePullPolicy").value_or(default_pull_policy(c.image));
  if (c.image_pull_policy != "Always" && c.image_pull_policy != "IfNotPresent" &&
      c.image_pull_policy != "Never")
    v["imagePullPolicy"].bad("must be Always, IfNotPresent or Never");
  c.command = v.string_list("command");
  c.args = v.string_list("args");
  c.working_dir = v.opt_string("workingDir").value_or("");
  v["ports"].each([&](const JsonView& p) {
    ContainerPort port;
    port.name = p.opt_string("name").value_or("");
    port.container_port = port_field(p["containerPort"], {});
    if (p["hostPort"].present()) port.host_port = port_field(p["hostPort"], {});
    port.protocol = p.opt_string("protocol").value_or("TCP");
    if (port.protocol != "TCP" && port.protocol != "UDP" && port.protocol != "SCTP")
      p["protocol"].bad("must be TCP, UDP or SCTP");
    port.host_ip = p.opt_string("hostIP").value_or("");
    c.ports.push_back(port);
  });
  v["env"].each([&](const JsonView& e) {
    EnvVar ev;
    ev.name = required_string(e["name"]);
    ev.value = e.opt_string("value").value_or("");
    if (auto from = e["valueFrom"]; from.present()) {
      from.each_member([&](const std::string& key, const JsonView& src) {
        if (key != "fieldRef") src.bad("not supported by berthlet (only fieldRef is)");
      });
      auto fp = required_string(from["fieldRef"]["fieldPath"]);
      static const std::set<std::string, std::less<>> known = {
          "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
          "spec.serviceAccountName", "status.hostIP", "status.podIP", "status.podIPs"};
      if (!known.count(fp)) from["fieldRef"]["fieldPath"].bad(fmt::format("unsupported field path {:?}", fp));
      ev.field_path = fp;
    }
    c.env.push_back(ev);
  });
  v["volumeMounts"].each([&](const JsonView& m) {
    VolumeMount vm;
    vm.name = required_string(m["name"]);
    vm.mount_path = required_string(m["mountPath"]);
    if (vm.mount_path[0] != '/') m["mountPath"].bad("must be an absolute path");
    if (vm.mount_path.find('\0') != std::string::npos) m["mountPath"].bad("must not contain NUL");
    vm.sub_path = m.opt_string("subPath").value_or("");
    check_descending_path(m["subPath"], vm.sub_path);
    vm.read_only = m.opt_bool("readOnly").value_or(false);
    if (auto mp = m["mountPropagation"]; mp.present() && mp.as_string() != "None")
      mp.bad("only None is supported");
    c.volume_mounts.push_back(vm);
  });
  c.resources = parse_resources(v["resources"]);
  if (auto sc = v["securityContext"]; sc.present()) {
    c.has_security_context = true;
    auto& s = c.security_context;
    s.run_as_user = sc.opt_int("runAsUser");
    s.run_as_group = sc.opt_int("runAsGroup");
    s.run_as_non_root = sc.opt_bool("runAsNonRoot");
    s.privileged = sc.opt_bool("privileged").value_or(false);
    s.cap_add = sc["capabilities"].string_list("add");
    s.cap_drop = sc["capabilities"].string_list("drop");
    s.read_only_root_filesystem = sc.opt_bool("readOnlyRootFilesystem").value_or(false);
    s.allow_privilege_escalation = sc.opt_bool("allowPrivilegeEscalation");
    s.seccomp_type = seccomp_type(sc["seccompProfile"], s.seccomp_localhost_profile);
    if (auto pm = sc["procMount"]; pm.present() && pm.as_string() != "Default") pm.bad("only Default is supported");
    if (sc["seLinuxOptions"].present()) sc["seLinuxOptions"].bad("not supported by berthlet");
    if (sc["appArmorProfile"].present()) sc["appArmorProfile"].bad("not supported by berthlet");
  }
  // The API server rejects probes and lifecycle hooks on init containers.
  if (init) {
    for (auto key : {"livenessProbe", "readinessProbe", "startupProbe", "lifecycle"})
      if (v[key].present()) v[key].bad("not allowed on init containers");
  }
  c.startup_probe = parse_probe(v["startupProbe"], c.ports, true);
  c.liveness_probe = parse_probe(v["livenessProbe"], c.ports, true);
  c.readiness_probe = parse_probe(v["readinessProbe"], c.ports, false);
  if (auto lc = v["lifecycle"]; lc.present()) {
    if (lc["postStart"].present()) c.post_start = parse_handler(lc["postStart"], false, c.ports);
    if (lc["preStop"].present()) c.pre_stop = parse_handler(lc["preStop"], false, c.ports);
  }
  c.tty = v.opt_bool("tty").value_or(false);
  c.stdin_open = v.opt_bool("stdin").value_or(false);
  c.termination_message_path = v.opt_string("terminationMessagePath").value_or("/dev/termination-log");
  c.hash = md5_hex(v.raw().dump()).substr(0, 8);
  return c;
}

Volume parse_volume(const JsonView& v) {
  v.expect_object();
  Volume vol;
  vol.name = required_string(v["name"]);
  if (!dns1123_label(vol.name)) v["name"].bad(fmt::format("{:?} is not a DNS-1123 label", vol.name));
  int kinds = 0;
  v.each_member([&](const std::string& key, const JsonView& src) {
    if (key == "name") return;
    kinds++;
    if (key == "hostPath") {
      vol.kind = Volume::Kind::host_path;
      vol.host_path = required_string(src["path"]);
      check_host_path(src["path"], vol.host_path);
      vol.host_path_type = src.opt_string("type").value_or("");
      static const std::set<std::string, std::less<>> types = {
          "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"};
      if (!types.count(vol.host_path_type)) src["type"].bad(fmt::format("unknown hostPath type {:?}", vol.host_path_type));
    } else if (key == "emptyDir") {
      vol.kind = Volume::Kind::empty_dir;
      vol.empty_dir_medium = src.opt_string("medium").value_or("");
      if (vol.empty_dir_medium != "" && vol.empty_dir_medium != "Memory")
        src["medium"].bad("must be \"\" or Memory");
      if (auto sl = src["sizeLimit"]; sl.present()) {
        try {
          vol.size_limit = parse_quantity(sl.raw().is_number() ? sl.raw().dump() : sl.as_string());
        } catch (Error& e) {
          e.wrap(sl.path());
          throw;
        }
      }
    } else {
      src.bad("volume type not supported by berthlet (hostPath and emptyDir are)");
    }
  });
  if (kinds != 1) v.bad("exactly one volume source is required");
  return vol;
}

} // namespace

bool valid_dns1123_subdomain(std::string_view s) { return dns1123_subdomain(s); }
bool valid_dns1123_label(std::string_view s) { return dns1123_label(s); }

bool valid_pod_uid(std::string_view s) {
  if (s.empty() || s.size() > kMaxUidLength) return false;
  for (char c : s)
    if (!(ascii_alnum(c) || c == '-' || c == '_')) return false;
  return ascii_alnum(s.front()) && ascii_alnum(s.back());
}

Pod parse_pod(const nlohmann::json& doc) {
  JsonView root(doc, "");
  root.expect_object();
  auto kind = root.opt_string("kind");
  if (!kind) root["kind"].bad("required (kind: Pod)");
  if (*kind != "Pod") root["kind"].bad(fmt::format("{:?} is not supported: a manifest holds one Pod", *kind));
  if (auto av = root.opt_string("apiVersion"); av && *av != "v1")
    root["apiVersion"].bad(fmt::format("{:?}: only v1 is supported", *av));
  Pod pod;
  auto meta = root["metadata"];
  if (!meta.present()) meta.bad("required");
  pod.name = required_string(meta["name"]);
  if (!dns1123_subdomain(pod.name)) meta["name"].bad(fmt::format("{:?} is not a DNS-1123 subdomain", pod.name));
  pod.namespace_ = meta.opt_string("namespace").value_or("");
  if (pod.namespace_.empty()) pod.namespace_ = "default";
  if (!dns1123_label(pod.namespace_)) meta["namespace"].bad(fmt::format("{:?} is not a DNS-1123 label", pod.namespace_));
  pod.uid = meta.opt_string("uid").value_or("");
  // The UID names the pod's directory (<rootDir>/pods/<uid>), its log directory and its cgroup.
  if (!pod.uid.empty() && !valid_pod_uid(pod.uid))
    meta["uid"].bad(fmt::format("{} is not a valid UID (1-{} letters, digits, '-' and '_', starting and ending "
                                "with a letter or digit)", quoted_value(pod.uid), kMaxUidLength));
  meta["labels"].each_member([&](const std::string& k, const JsonView& v) { pod.labels[k] = v.as_string(); });
  meta["annotations"].each_member([&](const std::string& k, const JsonView& v) { pod.annotations[k] = v.as_string(); });

  auto spec = root["spec"];
  if (!spec.present()) spec.bad("required");
  spec.expect_object();
  reject_unsupported(spec, kUnsupportedSpec);
  auto& s = pod.spec;
  std::set<std::string> names;
  auto add_containers = [&](const char* key, std::vector<Container>& out, bool init) {
    spec[key].each([&](const JsonView& c) {
      out.push_back(parse_container(c, init));
      if (!names.insert(out.back().name).second) c["name"].bad(fmt::format("duplicate container name {:?}", out.back().name));
    });
  };
  add_containers("initContainers", s.init_containers, true);
  add_containers("containers", s.containers, false);
  if (s.containers.empty()) spec["containers"].bad("at least one container is required");

  std::set<std::string> vol_names;
  spec["volumes"].each([&](const JsonView& v) {
    s.volumes.push_back(parse_volume(v));
    if (!vol_names.insert(s.volumes.back().name).second) v["name"].bad(fmt::format("duplicate volume name {:?}", s.volumes.back().name));
  });
  auto check_mounts = [&](const char* key, const std::vector<Container>& cs) {
    for (size_t i = 0; i < cs.size(); i++)
      for (size_t j = 0; j < cs[i].volume_mounts.size(); j++)
        if (!vol_names.count(cs[i].volume_mounts[j].name))
          fail("spec.{}[{}].volumeMounts[{}].name: no volume named {:?}", key, i, j, cs[i].volume_mounts[j].name);
  };
  check_mounts("initContainers", s.init_containers);
  check_mounts("containers", s.containers);

  s.restart_policy = spec.opt_string("restartPolicy").value_or("Always");
  if (s.restart_policy != "Always" && s.restart_policy != "OnFailure" && s.restart_policy != "Never")
    spec["restartPolicy"].bad("must be Always, OnFailure or Never");
  if (auto g = spec["terminationGracePeriodSeconds"]; g.present()) {
    s.termination_grace_period_seconds = g.as_int();
    if (s.termination_grace_period_seconds < 0) g.bad("must not be negative");
  }
  s.host_network = spec.opt_bool("hostNetwork").value_or(false);
  s.host_pid = spec.opt_bool("hostPID").value_or(false);
  s.host_ipc = spec.opt_bool("hostIPC").value_or(false);
  s.hostname = spec.opt_string("hostname").value_or("");
  if (!s.hostname.empty() && !dns1123_label(s.hostname)) spec["hostname"].bad("not a DNS-1123 label");
  s.subdomain = spec.opt_string("subdomain").value_or("");
  if (!s.subdomain.empty() && !dns1123_label(s.subdomain)) spec["subdomain"].bad("not a DNS-1123 label");
  s.dns_policy = spec.opt_string("dnsPolicy").value_or("ClusterFirst");
  if (s.dns_policy != "ClusterFirst" && s.dns_policy != "ClusterFirstWithHostNet" && s.dns_policy != "Default" &&
      s.dns_policy != "None")
    spec["dnsPolicy"].bad("must be ClusterFirst, ClusterFirstWithHostNet, Default or None");
  if (auto dc = spec["dnsConfig"]; dc.present()) {
    DnsConfig d;
    d.nameservers = dc.string_list("nameservers");
    d.searches = dc.string_list("searches");
    dc["options"].each([&](const JsonView& o) {
      d.options.emplace_back(required_string(o["name"]), o.opt_string("value").value_or(""));
    });
    s.dns_config = d;
  }
  if (s.dns_policy == "None" && (!s.dns_config || s.dns_config->nameservers.empty()))
    spec["dnsConfig"].bad("dnsPolicy None needs dnsConfig.nameservers");
  if (auto sc = spec["securityContext"]; sc.present()) {
    auto& p = s.security_context;
    p.run_as_user = sc.opt_int("runAsUser");
    p.run_as_group = sc.opt_int("runAsGroup");
    p.fs_group = sc.opt_int("fsGroup");
    p.run_as_non_root = sc.opt_bool("runAsNonRoot");
    sc["supplementalGroups"].each([&](const JsonView& g) { p.supplemental_groups.push_back(g.as_int()); });
    sc["sysctls"].each([&](const JsonView& x) {
      auto name = required_string(x["name"]);
      if (!valid_sysctl_name(name)) x["name"].bad(fmt::format("{} is not a valid sysctl name", quoted_value(name)));
      p.sysctls.push_back({name, x.opt_string("value").value_or("")});
    });
    p.seccomp_type = seccomp_type(sc["seccompProfile"], p.seccomp_localhost_profile);
    if (sc["seLinuxOptions"].present()) sc["seLinuxOptions"].bad("not supported by berthlet");
  }
  s.priority_class_name = spec.opt_string("priorityClassName").value_or("");
  return pod;
}

std::string qos_class(const PodSpec& spec) {
  bool any = false, guaranteed = true;
  auto visit = [&](const Container& c) {
    auto& r = c.resources;
    if (r.cpu_request_milli || r.cpu_limit_milli || r.memory_request || r.memory_limit) any = true;
    if (!r.cpu_limit_milli || !r.memory_limit || r.cpu_request_milli != r.cpu_limit_milli ||
        r.memory_request != r.memory_limit)
      guaranteed = false;
  };
  for (auto& c : spec.init_containers) visit(c);
  for (auto& c : spec.containers) visit(c);
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

} // namespace berth::agent
