// config.json for CRI containers and pause processes, assembled from the parts built in
// spec_process.cpp, spec_mounts.cpp, spec_resources.cpp and spec_security.cpp. What
// containerd 1.7's CRI plugin (pkg/cri/server/container_create_linux.go,
// sandbox_run_linux.go) hands runc, adapted to Berth: namespaces are pinned files rather
// than a pause process's /proc/<pid>/ns, and the rootfs is an absolute path.
#include "cri/pod/oci_spec.hpp"

#include <set>

#include "cri/pod/seccomp_profile.hpp"
#include "cri/pod/spec_internal.hpp"

namespace berth::cri {
namespace spec {

std::string indexed(std::string_view field, size_t i) { return fmt::format("{}[{}]", field, i); }

void check_text(std::string_view value, std::string_view field, size_t max) {
  if (value.find('\0') != std::string_view::npos) invalid("{}: must not contain a NUL byte", field);
  if (value.size() > max) invalid("{}: {} bytes, at most {} are accepted", field, value.size(), max);
}

std::string clean_path(std::string_view path) {
  bool rooted = !path.empty() && path[0] == '/';
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    auto slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? "" : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") parts.pop_back();
      else if (!rooted) parts.push_back(part);
      continue;
    }
    parts.push_back(part);
  }
  std::string out = rooted ? "/" : "";
  for (size_t i = 0; i < parts.size(); i++) {
    if (i) out += '/';
    out += parts[i];
  }
  return out.empty() ? "." : out;
}

std::string absolute_path(std::string_view value, std::string_view field) {
  check_text(value, field, 4096);
  if (value.empty() || value[0] != '/') invalid("{}: \"{}\" must be an absolute path", field, value);
  return clean_path(value);
}

} // namespace spec

namespace {

using runtime::v1::NamespaceMode;
using spec::invalid;

// Annotations that runc, crun or kata act on: a client must not configure the runtime
// through them (runc: systemd unit properties, CRIU settings; crun: run.oci.*), and the
// io.kubernetes.cri.* ones are berthd's own.
constexpr std::string_view kReservedAnnotationPrefixes[] = {"io.kubernetes.cri.", "org.systemd.property.",
                                                            "org.criu.", "run.oci.", "io.katacontainers."};
constexpr size_t kMaxAnnotationBytes = 256 * 1024;  // the Kubernetes API server's limit

const runtime::v1::PodSandboxConfig& pod_config(const SandboxContext* sandbox) {
  if (!sandbox || !sandbox->config) invalid("sandbox_config: missing");
  return *sandbox->config;
}

json namespace_entry(std::string_view type, const std::string& path = "") {
  json e{{"type", type}};
  if (!path.empty()) e["path"] = path;
  return e;
}

// The pod's pinned network, IPC and UTS namespaces (none: the node's), as containerd
// joins the sandbox's; the PID namespace per the container's mode.
json container_namespaces(const ContainerSpecInput& in, bool privileged) {
  const SandboxContext& sb = *in.sandbox;
  const auto& options = in.config->linux().security_context().namespace_options();
  NamespaceMode pod_pid = sb.config->linux().security_context().namespace_options().pid();
  constexpr std::string_view field = "linux.security_context.namespace_options";
  json ns = json::array();
  switch (options.pid()) {
  case runtime::v1::CONTAINER: ns.push_back(namespace_entry("pid")); break;
  case runtime::v1::NODE:
    // Only a host-PID pod may hand the node's PID namespace to a container.
    if (pod_pid != runtime::v1::NODE) invalid("{}.pid: NODE, but the pod does not use the node's PID namespace", field);
    break;
  case runtime::v1::POD:
    if (pod_pid == runtime::v1::NODE) break;
    // A pod whose containers do not share one (pid mode CONTAINER, so no pause process):
    // the container's own, as it would get from a pause-less containerd sandbox.
    ns.push_back(sb.pidns_path.empty() ? namespace_entry("pid") : namespace_entry("pid", sb.pidns_path));
    break;
  case runtime::v1::TARGET:
    if (in.target_pidns_path.empty())
      invalid("{}.target_id: the PID namespace of target \"{}\" is unknown", field, options.target_id());
    ns.push_back(namespace_entry("pid", in.target_pidns_path));
    break;
  default: invalid("{}.pid: unknown mode {}", field, static_cast<int>(options.pid()));
  }
  if (!sb.ipcns_path.empty()) ns.push_back(namespace_entry("ipc", sb.ipcns_path));
  if (!sb.utsns_path.empty()) ns.push_back(namespace_entry("uts", sb.utsns_path));
  ns.push_back(namespace_entry("mount"));
  if (!sb.netns_path.empty()) ns.push_back(namespace_entry("network", sb.netns_path));
  // containerd on cgroup v2: a cgroup namespace hides the host's hierarchy, except from
  // privileged containers.
  if (!privileged) ns.push_back(namespace_entry("cgroup"));
  if (options.has_userns_options() && options.userns_options().mode() != runtime::v1::NODE)
    invalid("{}.userns_options.mode: user namespaces are not supported", field);
  return ns;
}

void add_pod_annotations(json& a, const std::string& sandbox_id, const runtime::v1::PodSandboxConfig& pod) {
  a["io.kubernetes.cri.sandbox-id"] = sandbox_id;
  a["io.kubernetes.cri.sandbox-name"] = pod.metadata().name();
  a["io.kubernetes.cri.sandbox-namespace"] = pod.metadata().namespace_();
  a["io.kubernetes.cri.sandbox-uid"] = pod.metadata().uid();
}

// The pod's cgroup parent: berthd's (it may give pods without one a default), else the
// request's.
const std::string& cgroup_parent(const SandboxContext& sandbox) {
  return sandbox.cgroup_parent.empty() ? sandbox.config->linux().cgroup_parent() : sandbox.cgroup_parent;
}

json container_annotations(const ContainerSpecInput& in) {
  json a = json::object();
  size_t bytes = 0;
  for (const auto& [key, value] : in.config->annotations()) {
    bytes += key.size() + value.size();
    if (bytes > kMaxAnnotationBytes) invalid("annotations: more than {} bytes in all", kMaxAnnotationBytes);
    spec::check_text(key, "annotations");
    spec::check_text(value, fmt::format("annotations[\"{}\"]", key), kMaxAnnotationBytes);
    bool reserved = false;
    for (auto prefix : kReservedAnnotationPrefixes) reserved |= key.rfind(prefix, 0) == 0;
    if (!reserved) a[key] = value;
  }
  const auto& image = in.config->image();
  std::string image_name = !in.image_name.empty()                   ? in.image_name
                           : !image.user_specified_image().empty() ? image.user_specified_image()
                                                                   : image.image();
  spec::check_text(image_name, "image.image");
  a["io.kubernetes.cri.container-type"] = "container";
  a["io.kubernetes.cri.container-name"] = in.config->metadata().name();
  a["io.kubernetes.cri.image-name"] = image_name;
  add_pod_annotations(a, in.sandbox->id, *in.sandbox->config);
  return a;
}

std::vector<std::string> known_sorted(const std::vector<std::string>& caps) {
  std::set<int> numbers;
  for (const auto& c : caps)
    if (auto n = spec::capability_number(c)) numbers.insert(*n);
  std::vector<std::string> out;
  for (int n : numbers) out.emplace_back(spec::capability_name(n));
  return out;
}

void check_id(const std::string& id, std::string_view what) {
  if (id.empty() || id.size() > 256 || id.find_first_of("/:\n") != std::string::npos || id.find('\0') != std::string::npos ||
      id == "." || id == "..")
    invalid("{}: \"{}\" is not a valid ID", what, id);
}

} // namespace

json build_container_spec(const ContainerSpecInput& in, const SpecOptions& opts) {
  if (!in.config) invalid("config: missing");
  const auto& pod = pod_config(in.sandbox);
  check_id(in.id, "container id");
  if (!in.config->has_metadata() || in.config->metadata().name().empty()) invalid("metadata.name: required");
  spec::check_text(in.config->metadata().name(), "metadata.name", 1024);
  std::string rootfs = spec::absolute_path(in.rootfs, "rootfs");
  const auto& sc = in.config->linux().security_context();
  bool privileged = sc.privileged();
  if (privileged && !pod.linux().security_context().privileged())
    invalid("linux.security_context.privileged: a privileged container needs a privileged pod");

  std::string hostname = !pod.hostname().empty() ? pod.hostname() : opts.host.hostname ? opts.host.hostname() : "";
  json process = spec::build_process({*in.config, in.image, in.resolve_user, hostname, opts.max_env}, opts);
  std::vector<std::string> all_caps = opts.host.capabilities ? opts.host.capabilities() : std::vector<std::string>{};
  std::vector<std::string> caps = privileged ? known_sorted(all_caps) : spec::container_capabilities(sc, all_caps);
  process["capabilities"] = spec::capabilities_object(caps);
  if (auto profile = spec::apparmor_for(sc, opts); !profile.empty()) process["apparmorProfile"] = profile;

  json linux = json::object();
  linux["resources"] = in.config->linux().has_resources() ? oci_resources(in.config->linux().resources(), opts)
                                                          : json::object();
  json mounts = spec::container_mounts(in, opts, privileged, linux);
  spec::add_devices(*in.config, opts, privileged, linux);
  linux["namespaces"] = container_namespaces(in, privileged);
  if (const auto& parent = cgroup_parent(*in.sandbox); !parent.empty())
    linux["cgroupsPath"] = container_cgroups_path(opts.cgroup_driver, parent, in.id);
  if (!privileged) {
    size_t max = opts.max_mounts;
    linux["maskedPaths"] = spec::path_list(sc.masked_paths(), spec::default_masked_paths(),
                                           "linux.security_context.masked_paths", max);
    linux["readonlyPaths"] = spec::path_list(sc.readonly_paths(), spec::default_readonly_paths(),
                                             "linux.security_context.readonly_paths", max);
  }
  json seccomp = spec::seccomp_for(sc.has_seccomp() ? &sc.seccomp() : nullptr, spec::seccomp_profile_path(sc),
                                   "linux.security_context", privileged, caps, opts);
  if (!seccomp.is_null()) linux["seccomp"] = std::move(seccomp);

  return json{{"ociVersion", "1.2.0"},
              {"process", std::move(process)},
              {"root", {{"path", rootfs}, {"readonly", sc.readonly_rootfs()}}},
              {"mounts", std::move(mounts)},
              {"linux", std::move(linux)},
              {"annotations", container_annotations(in)}};
}

json build_pause_spec(const std::string& sandbox_id, const SandboxContext& sandbox, const std::string& rootfs,
                      const SpecOptions& opts) {
  const auto& pod = pod_config(&sandbox);
  check_id(sandbox_id, "sandbox id");
  const auto& sc = pod.linux().security_context();
  constexpr std::string_view field = "linux.security_context";

  // The pod's numeric user (a pod has no run_as_username; a group needs a user), else
  // 65535:65535, the user of the Kubernetes pause image containerd runs.
  std::string user = "65535:65535";
  if (sc.has_run_as_group() && !sc.has_run_as_user())
    invalid("{}.run_as_group: group {} is set without run_as_user", field, sc.run_as_group().value());
  for (auto [set, id, name] : {std::tuple{sc.has_run_as_user(), sc.run_as_user().value(), "run_as_user"},
                               std::tuple{sc.has_run_as_group(), sc.run_as_group().value(), "run_as_group"}}) {
    if (set && (id < 0 || id > INT32_MAX)) invalid("{}.{}: {} is out of range (0 to {})", field, name, id, INT32_MAX);
  }
  if (sc.has_run_as_user()) user.assign(std::to_string(sc.run_as_user().value()));
  if (sc.has_run_as_group()) user.append(":").append(std::to_string(sc.run_as_group().value()));
  std::vector<int64_t> groups(sc.supplemental_groups().begin(), sc.supplemental_groups().end());
  json process{{"terminal", false},
               {"args", {"/pause"}},
               {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
               {"cwd", "/"},
               {"user", spec::resolve_process_user(user, fmt::format("{}.run_as_user", field), nullptr, groups,
                                                   fmt::format("{}.supplemental_groups", field), false)},
               {"capabilities", spec::capabilities_object(spec::default_capabilities())},
               {"noNewPrivileges", true},
               {"oomScoreAdj", spec::oom_score_adj(-998, "pause oom_score_adj", opts)}};

  // containerd's sandbox mounts: the defaults, with the pod's /dev/shm bound read-only.
  json mounts = json::array();
  std::string shm = sandbox.ipcns_path.empty() ? "/dev/shm" : sandbox.shm_path;
  for (auto& m : spec::default_mounts(false))
    if (shm.empty() || m["destination"] != "/dev/shm") mounts.push_back(std::move(m));
  if (!shm.empty())
    mounts.push_back({{"destination", "/dev/shm"}, {"type", "bind"}, {"source", shm},
                      {"options", {"rbind", "ro", "nosuid", "nodev", "noexec"}}});

  json linux{{"namespaces", json::array({namespace_entry("pid")})},
             {"resources", {{"cpu", {{"shares", 2}}}, {"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}}},
             {"maskedPaths", spec::default_masked_paths()},
             {"readonlyPaths", spec::default_readonly_paths()}};
  if (!sandbox.ipcns_path.empty()) linux["namespaces"].push_back(namespace_entry("ipc", sandbox.ipcns_path));
  if (!sandbox.utsns_path.empty()) linux["namespaces"].push_back(namespace_entry("uts", sandbox.utsns_path));
  linux["namespaces"].push_back(namespace_entry("mount"));
  if (!sandbox.netns_path.empty()) linux["namespaces"].push_back(namespace_entry("network", sandbox.netns_path));
  if (const auto& parent = cgroup_parent(sandbox); !parent.empty())
    linux["cgroupsPath"] = container_cgroups_path(opts.cgroup_driver, parent, sandbox_id);
  json seccomp = spec::seccomp_for(sc.has_seccomp() ? &sc.seccomp() : nullptr, spec::seccomp_profile_path(sc), field,
                                   sc.privileged(), spec::default_capabilities(), opts);
  if (!seccomp.is_null()) linux["seccomp"] = std::move(seccomp);

  json annotations{{"io.kubernetes.cri.container-type", "sandbox"},
                   {"io.kubernetes.cri.sandbox-log-directory", pod.log_directory()}};
  add_pod_annotations(annotations, sandbox_id, pod);
  if (pod.linux().has_resources()) {
    const auto& r = pod.linux().resources();
    annotations["io.kubernetes.cri.sandbox-cpu-period"] = std::to_string(r.cpu_period());
    annotations["io.kubernetes.cri.sandbox-cpu-quota"] = std::to_string(r.cpu_quota());
    annotations["io.kubernetes.cri.sandbox-cpu-shares"] = std::to_string(r.cpu_shares());
    annotations["io.kubernetes.cri.sandbox-memory"] = std::to_string(r.memory_limit_in_bytes());
  }
  return json{{"ociVersion", "1.2.0"},
              {"process", std::move(process)},
              {"root", {{"path", spec::absolute_path(rootfs, "rootfs")}, {"readonly", true}}},
              {"mounts", std::move(mounts)},
              {"linux", std::move(linux)},
              {"annotations", std::move(annotations)}};
}

std::string container_cgroups_path(CgroupDriver driver, const std::string& parent, const std::string& id) {
  check_id(id, "cgroup of container");
  if (parent.empty()) return "";
  constexpr std::string_view field = "sandbox_config.linux.cgroup_parent";
  spec::check_text(parent, field);
  for (std::string_view rest = parent; !rest.empty();) {
    auto slash = rest.find('/');
    if (rest.substr(0, slash) == "..") invalid("{}: \"{}\" must not contain ..", field, parent);
    rest = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  }
  std::string clean = spec::clean_path(parent);
  if (driver == CgroupDriver::systemd) {
    // runc's systemd form "slice:prefix:name"; for a.slice/b.slice the slice is b.slice.
    std::string slice = clean.substr(clean.rfind('/') + 1);
    if (slice.size() <= 6 || !slice.ends_with(".slice"))
      invalid("{}: \"{}\" is not a systemd slice, which the systemd cgroup driver needs", field, parent);
    return slice + ":berth:" + id;
  }
  return spec::clean_path(clean + "/" + id);
}

} // namespace berth::cri
