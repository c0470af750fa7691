// The OCI runtime configuration (config.json) of a CRI container, and of the pause
// process a pod gets when its containers share one PID namespace, built from the CRI
// request, the pod's configuration, the image's config and berthd's settings.
//
// Pure functions over their inputs: the only I/O is what the caller injects (the user
// resolver reads the container's /etc/passwd and /etc/group) and reading a seccomp
// Localhost profile file. Every error is a berth::Error with EINVAL whose message names
// the CRI field at fault ("linux.security_context.capabilities.add_capabilities[1]:
// unknown capability \"CAP_FOO\""), so berthd can answer INVALID_ARGUMENT with it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api.pb.h"
#include "common/json.hpp"

namespace berth::cri {

enum class CgroupDriver { cgroupfs, systemd };

// What berthd uses of an OCI image config ("config" object of the image config JSON).
struct ImageConfig {
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir;
  std::string user;         // "", "name", "uid", "uid:gid", "name:group"
  std::string stop_signal;  // "" or "SIGQUIT", "QUIT", "3"
  std::vector<std::string> volumes;  // absolute paths (keys of config.Volumes), sorted
};

// Parses the image config JSON that the image store holds (untrusted: it came from a
// registry). Bounded: nesting depth, string and list sizes; fields of the wrong type
// are an error naming them.
ImageConfig parse_image_config(std::string_view image_config_json);

// A user resolved inside the container's root file system.
struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // groups of /etc/group that list the user
  std::string home;                       // from /etc/passwd ("" when unknown)
};
// Resolves "name", "uid", "uid:gid", "name:group", "uid:group" against the container's
// /etc/passwd and /etc/group, as runc's libcontainer/user does: a numeric uid without
// an entry is fine (gid 0), a name without an entry is an error.
using UserResolver = std::function<ResolvedUser(const std::string& user)>;

// What the pod contributes to each of its containers.
struct SandboxContext {
  std::string id;
  const runtime::v1::PodSandboxConfig* config = nullptr;
  // Pinned namespaces to join; empty when the pod uses the node's namespace.
  std::string netns_path, ipcns_path, utsns_path;
  // The pause process's PID namespace (/proc/<pid>/ns/pid) when pid mode is POD.
  std::string pidns_path;
  // Files prepared for the pod (empty: do not mount): bound to /etc/hostname,
  // /etc/hosts, /etc/resolv.conf and /dev/shm unless the container mounts that path.
  std::string hostname_path, hosts_path, resolv_conf_path, shm_path;
  std::string cgroup_parent;  // as the kubelet gave it (cgroupfs path or systemd slice)
};

struct SpecOptions {
  CgroupDriver cgroup_driver = CgroupDriver::cgroupfs;
  // The host cannot lower oom_score_adj (no CAP_SYS_RESOURCE): clamp to the daemon's
  // own value, as containerd's restrict_oom_score_adj does.
  bool restrict_oom_score_adj = false;
  // Directory that relative Localhost seccomp refs are resolved in (the kubelet sends
  // absolute paths; crictl sends "localhost/<path>").
  std::string seccomp_profile_root = "/var/lib/kubelet/seccomp";
  // Cap on process.env entries and mounts a request may bring (hostile clients).
  size_t max_env = 4096, max_mounts = 1024, max_devices = 1024;
};

struct ContainerSpecInput {
  std::string id;
  const runtime::v1::ContainerConfig* config = nullptr;
  const SandboxContext* sandbox = nullptr;
  ImageConfig image;
  std::string rootfs;            // absolute path of the mounted root file system
  UserResolver resolve_user;     // called for run_as_username / image user names
  // Target mode (NamespaceOption.target_id): the target container's PID namespace.
  std::string target_pidns_path;
  // Image volumes are created as directories in the rootfs by the caller; nothing
  // here mounts them.
};

// config.json for a container. Includes: process (args from command/args and the
// image's entrypoint/cmd as the kubelet and containerd merge them, env merged image
// then CRI, cwd, user and groups incl. supplemental groups, capabilities, no_new_privs,
// rlimits default, oom_score_adj, apparmor/selinux left out, terminal), root
// (readonly), hostname, mounts (the standard /proc /dev /dev/pts /dev/shm /dev/mqueue
// /sys /sys/fs/cgroup set as containerd builds it, the pod's files, CRI mounts with
// propagation and rro, devices), linux namespaces per the pod and container namespace
// options, linux.resources, cgroupsPath, masked/readonly paths (defaults unless the
// request brings its own or the container is privileged), seccomp (RuntimeDefault =
// the built-in profile, Unconfined, Localhost file), sysctls none (the pod's namespaces
// carry them), annotations (io.kubernetes.cri.* as containerd sets them).
json build_container_spec(const ContainerSpecInput& in, const SpecOptions& opts);

// config.json of a pod's pause process: rootfs `rootfs` (read-only, holding /pause),
// args ["/pause"], new PID and mount namespaces, the pod's pinned namespaces, the pod's
// security context (run_as_user etc.), cgroupsPath under the pod's parent.
json build_pause_spec(const std::string& sandbox_id, const SandboxContext& sandbox, const std::string& rootfs,
                      const SpecOptions& opts);

// linux.resources of the OCI spec from CRI's resources (also for `runtime update`).
json oci_resources(const runtime::v1::LinuxContainerResources& res, const SpecOptions& opts);

// OCI linux.cgroupsPath of a container: "<parent>/<id>" style for cgroupfs
// ("/kubepods/besteffort/pod<uid>/<id>"), "<slice>:berth:<id>" for systemd.
std::string container_cgroups_path(CgroupDriver driver, const std::string& parent, const std::string& id);

// The signal number of an image's StopSignal ("SIGQUIT", "QUIT", "3"); SIGTERM when empty.
int parse_stop_signal(std::string_view signal);

} // namespace berth::cri
