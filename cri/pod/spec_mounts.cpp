// The file system side of a container's config.json: containerd's default mounts, the
// pod's shared files, the request's bind mounts (propagation, read-only, rro), masked
// and read-only paths, devices.
#include <algorithm>
#include <map>
#include <set>

#include "cri/pod/spec_internal.hpp"

namespace berth::cri::spec {
namespace {

using runtime::v1::ContainerConfig;
using runtime::v1::MountPropagation;

// A bind mount to make: the request's, or one of the pod's files.
struct BindMount {
  std::string destination;  // clean
  std::string source;
  bool readonly = false;
  bool recursive_readonly = false;
  MountPropagation propagation = runtime::v1::PROPAGATION_PRIVATE;
  std::string field;  // "mounts[2]", or "" for the pod's own files
};

json mount(std::string_view dest, std::string_view type, std::string_view source, std::vector<std::string> options) {
  return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", std::move(options)}};
}

// containerd's orderedMounts: by the number of '/' in the destination, stable, so a
// parent is mounted before what the request mounts inside it.
size_t depth(const std::string& path) { return static_cast<size_t>(std::count(path.begin(), path.end(), '/')); }

BindMount requested_mount(const runtime::v1::Mount& m, size_t i, const SpecOptions& opts) {
  BindMount b;
  b.field = indexed("mounts", i);
  b.destination = absolute_path(m.container_path(), b.field + ".container_path");
  if (b.destination == "/") invalid("{}.container_path: cannot mount over the root", b.field);
  std::string host = absolute_path(m.host_path(), b.field + ".host_path");
  if (m.uidmappings_size() || m.gidmappings_size())
    invalid("{}.uidMappings: idmapped mounts are not supported (they need user namespaces)", b.field);
  if (m.has_image() && !m.image().image().empty())
    invalid("{}.image: image volumes are not supported", b.field);
  b.readonly = m.readonly();
  b.recursive_readonly = m.recursive_read_only();
  b.propagation = m.propagation();
  if (!runtime::v1::MountPropagation_IsValid(b.propagation))
    invalid("{}.propagation: unknown propagation {}", b.field, static_cast<int>(b.propagation));
  if (b.recursive_readonly && !b.readonly)
    invalid("{}.recursive_read_only: needs readonly to be set too", b.field);
  if (b.recursive_readonly && b.propagation != runtime::v1::PROPAGATION_PRIVATE)
    invalid("{}.recursive_read_only: needs PROPAGATION_PRIVATE (a shared or slave mount could receive "
            "writable mounts later)", b.field);
  try {
    b.source = opts.host.prepare_bind_source ? opts.host.prepare_bind_source(host) : host;
  } catch (Error& e) {
    throw e.wrap(b.field + ".host_path");
  }
  return b;
}

// The pod's /etc/hostname, /etc/hosts, /etc/resolv.conf and /dev/shm, unless the request
// mounts that path itself (containerd's containerMounts).
std::vector<BindMount> pod_file_mounts(const ContainerSpecInput& in, const std::set<std::string>& requested) {
  const SandboxContext& sb = *in.sandbox;
  bool readonly = in.config->linux().security_context().readonly_rootfs();
  std::vector<BindMount> out;
  auto add = [&](const char* dest, const std::string& source, bool ro) {
    if (!source.empty() && !requested.count(dest)) out.push_back(BindMount{dest, source, ro, false, {}, ""});
  };
  add("/etc/hostname", sb.hostname_path, readonly);
  add("/etc/hosts", sb.hosts_path, readonly);
  add("/etc/resolv.conf", sb.resolv_conf_path, readonly);
  // A pod on the node's IPC namespace shares the node's /dev/shm too.
  add("/dev/shm", sb.ipcns_path.empty() ? std::string("/dev/shm") : sb.shm_path, false);
  return out;
}

std::string_view propagation_option(const BindMount& b, const SpecOptions& opts, json& linux) {
  auto host_propagation = [&] {
    if (!opts.host.mount_propagation) return std::string("shared");  // nothing to check with
    try {
      return opts.host.mount_propagation(b.source);
    } catch (Error& e) {
      throw e.wrap(b.field + ".propagation");
    }
  };
  switch (b.propagation) {
  case runtime::v1::PROPAGATION_BIDIRECTIONAL: {
    // Mounts made inside can only reach the host through a shared host mount.
    std::string p = host_propagation();
    if (p != "shared")
      invalid("{}.propagation: BIDIRECTIONAL needs \"{}\" on a shared mount, but its mount is {}", b.field,
              b.source, p);
    linux["rootfsPropagation"] = "rshared";
    return "rshared";
  }
  case runtime::v1::PROPAGATION_HOST_TO_CONTAINER: {
    std::string p = host_propagation();
    if (p != "shared" && p != "slave")
      invalid("{}.propagation: HOST_TO_CONTAINER needs \"{}\" on a shared or slave mount, but its mount is {}",
              b.field, b.source, p);
    if (linux.value("rootfsPropagation", "") != "rshared") linux["rootfsPropagation"] = "rslave";
    return "rslave";
  }
  default: return "rprivate";
  }
}

} // namespace

json default_mounts(bool privileged) {
  return json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", privileged ? "rw" : "ro"}),
  });
}

json container_mounts(const ContainerSpecInput& in, const SpecOptions& opts, bool privileged, json& linux) {
  const auto& cri = in.config->mounts();
  if (static_cast<size_t>(cri.size()) > opts.max_mounts)
    invalid("mounts: {} mounts, at most {} are accepted", cri.size(), opts.max_mounts);
  std::vector<BindMount> binds;
  std::set<std::string> requested;
  for (int i = 0; i < cri.size(); i++) {
    binds.push_back(requested_mount(cri[i], static_cast<size_t>(i), opts));
    requested.insert(binds.back().destination);
  }
  for (auto& b : pod_file_mounts(in, requested)) binds.push_back(std::move(b));
  std::stable_sort(binds.begin(), binds.end(),
                   [](const BindMount& a, const BindMount& b) { return depth(a.destination) < depth(b.destination); });

  json defaults = default_mounts(privileged);
  // Docker's behaviour, kept by containerd: cgroups visible, read-only unless privileged.
  defaults.push_back(mount("/sys/fs/cgroup", "cgroup", "cgroup",
                           {"nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"}));
  // A default mount gives way to a bind at its path; a bind at /dev replaces all of /dev.
  std::set<std::string> bound;
  for (const auto& b : binds) bound.insert(b.destination);
  json out = json::array();
  for (auto& m : defaults) {
    std::string dest = m["destination"];
    if (!bound.count(dest) && !(bound.count("/dev") && dest.rfind("/dev/", 0) == 0)) out.push_back(std::move(m));
  }
  for (const auto& b : binds) {
    std::vector<std::string> options{"rbind", std::string(propagation_option(b, opts, linux))};
    // As containerd: a read-only root does not make the mounts read-only.
    options.emplace_back(b.recursive_readonly ? "rro" : b.readonly ? "ro" : "rw");
    out.push_back(mount(b.destination, "bind", b.source, std::move(options)));
  }
  return out;
}

const std::vector<std::string>& default_masked_paths() {
  static const std::vector<std::string> paths = {
      "/proc/acpi",         "/proc/asound",      "/proc/kcore",        "/proc/keys",
      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",  "/proc/sched_debug",
      "/sys/firmware",      "/sys/devices/virtual/powercap", "/proc/scsi"};
  return paths;
}

const std::vector<std::string>& default_readonly_paths() {
  static const std::vector<std::string> paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                 "/proc/sysrq-trigger"};
  return paths;
}

json path_list(const google::protobuf::RepeatedPtrField<std::string>& requested,
               const std::vector<std::string>& defaults, std::string_view field, size_t max) {
  if (requested.empty()) return defaults;
  if (static_cast<size_t>(requested.size()) > max)
    invalid("{}: {} paths, at most {} are accepted", field, requested.size(), max);
  json out = json::array();
  for (int i = 0; i < requested.size(); i++)
    out.push_back(absolute_path(requested[i], indexed(field, static_cast<size_t>(i))));
  return out;
}

void add_devices(const ContainerConfig& config, const SpecOptions& opts, bool privileged, json& linux) {
  const auto& requested = config.devices();
  if (static_cast<size_t>(requested.size()) > opts.max_devices)
    invalid("devices: {} devices, at most {} are accepted", requested.size(), opts.max_devices);
  // Container path -> node; a later node at the same path replaces an earlier one.
  std::vector<json> nodes;
  std::map<std::string, size_t> by_path;
  auto add_node = [&](const std::string& path, const HostDevice& d) {
    json node{{"path", path}, {"type", std::string(1, d.type)}, {"major", d.major}, {"minor", d.minor},
              {"fileMode", d.file_mode}, {"uid", d.uid}, {"gid", d.gid}};
    if (auto it = by_path.find(path); it != by_path.end()) nodes[it->second] = std::move(node);
    else by_path[path] = nodes.size(), nodes.push_back(std::move(node));
  };
  json rules = json::array({{{"allow", false}, {"access", "rwm"}}});
  for (int i = 0; i < requested.size(); i++) {
    const auto& d = requested[i];
    std::string field = indexed("devices", static_cast<size_t>(i));
    std::string host = absolute_path(d.host_path(), field + ".host_path");
    std::string container = d.container_path().empty() ? "" : absolute_path(d.container_path(), field + ".container_path");
    const std::string& access = d.permissions();
    if (access.empty() || access.find_first_not_of("rwm") != std::string::npos)
      invalid("{}.permissions: \"{}\" must be a combination of r, w and m", field, access);
    std::vector<HostDevice> found;
    try {
      if (!opts.host.devices_at) invalid("no device lookup is configured");
      found = opts.host.devices_at(host);
    } catch (Error& e) {
      throw e.wrap(field + ".host_path");
    }
    for (const auto& dev : found) {
      // A directory's nodes keep their place below the container path.
      std::string path = container.empty() ? dev.path : container + dev.relative;
      add_node(path, dev);
      rules.push_back({{"allow", true}, {"type", std::string(1, dev.type)}, {"major", dev.major},
                       {"minor", dev.minor}, {"access", access}});
      if (nodes.size() > opts.max_devices)
        invalid("{}.host_path: more than {} device nodes in all", field, opts.max_devices);
    }
  }
  if (privileged) {
    // Every host device, unless the request placed its own node at that path; and no
    // device rules at all (containerd's WithHostDevices + WithAllDevicesAllowed).
    std::vector<HostDevice> host_devices;
    try {
      if (!opts.host.devices_at) invalid("no device lookup is configured");
      host_devices = opts.host.devices_at("/dev");
    } catch (Error& e) {
      throw e.wrap("linux.security_context.privileged: the host's devices");
    }
    for (const auto& dev : host_devices)
      if (!by_path.count("/dev" + dev.relative)) add_node("/dev" + dev.relative, dev);
    rules = json::array({{{"allow", true}, {"access", "rwm"}}});
  }
  if (!nodes.empty()) linux["devices"] = nodes;
  linux["resources"]["devices"] = rules;
}

} // namespace berth::cri::spec
