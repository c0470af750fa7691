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
// an entry is fine (gid 0), a name without an entry is an error. additional_gids are the
// groups that list the user's name (even when the string carries an explicit group), as
// containerd's WithAdditionalGIDs finds them. The builder always calls it, with "0" when
// neither the request nor the image names a user; without a resolver, numeric users
// resolve to themselves and names are an error.
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

// A device node found on the host (by stat, as containerd's DeviceFromPath).
struct HostDevice {
  std::string path;      // the node's host path (symlinks resolved)
  std::string relative;  // its path below the directory asked for ("/dri/card0"); "" for a node
  char type = 'c';   // 'c' or 'b'
  int64_t major = 0, minor = 0;
  uint32_t file_mode = 0;  // permission bits
  uint32_t uid = 0, gid = 0;
};

// The facts about the host the builder needs, as functions so that tests can replace
// them; live_host_access() reads the running system the way containerd does.
struct HostAccess {
  // berthd's effective capabilities ("CAP_CHOWN", ...): what "ALL" and privileged grant
  // (containerd's cap.Current()).
  std::function<std::vector<std::string>()> capabilities;
  // berthd's own /proc/self/oom_score_adj, for restrict_oom_score_adj.
  std::function<int()> oom_score_adj;
  // The node's hostname, for HOSTNAME when the pod sets none (host network).
  std::function<std::string()> hostname;
  // A CRI mount's host_path as it will be bound: created as a directory (0755) when it
  // does not exist and symlinks resolved, as containerd and CRI-O do.
  std::function<std::string(const std::string& host_path)> prepare_bind_source;
  // "shared", "slave" or "private": the propagation of the host mount holding path.
  std::function<std::string(const std::string& path)> mount_propagation;
  // The device at path, or every device below it when it is a directory (skipping
  // /dev/pts, shm, mqueue, fd, console and fifos, as containerd's getDevices).
  std::function<std::vector<HostDevice>(const std::string& path)> devices_at;
  // Whether AppArmor is enabled, and whether a profile of that name is loaded.
  std::function<bool()> apparmor_enabled;
  std::function<bool(const std::string& profile)> apparmor_profile_loaded;
};
HostAccess live_host_access();

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
  HostAccess host = live_host_access();
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
  // The image's name in the store (its first tag), for io.kubernetes.cri.image-name as
  // containerd sets it; empty: config.image.user_specified_image, else config.image.image.
  std::string image_name;
  // Image volumes are created as directories in the rootfs by the caller; nothing
  // here mounts them.
};

// config.json for a container, as containerd 1.7's CRI plugin builds it for runc:
// process (args from command/args and the image's entrypoint/cmd as the kubelet and
// containerd merge them; env: PATH, TERM with a tty, HOSTNAME, then the image's, then
// the request's, later keys replacing earlier ones; cwd; user and groups incl.
// supplemental groups; capabilities; no_new_privs; oom_score_adj; AppArmor Localhost
// profiles; terminal; no rlimits: containerd's CRI drops the default ones, so the
// container inherits berthd's), root (readonly), mounts (the standard /proc /dev
// /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup set as containerd builds it, the
// pod's files, CRI mounts with propagation and rro, sorted parents first), devices,
// linux namespaces per the pod (pinned paths) and the container's PID mode, a cgroup
// namespace unless privileged, linux.resources, cgroupsPath, masked/readonly paths
// (defaults unless the request brings its own, none when privileged), seccomp
// (RuntimeDefault = the built-in profile, Unconfined, Localhost file; none when
// privileged), no hostname and no sysctls (the pod's pinned namespaces carry them),
// annotations (the request's, minus keys OCI runtimes act on, then io.kubernetes.cri.*
// as containerd sets them).
json build_container_spec(const ContainerSpecInput& in, const SpecOptions& opts);

// config.json of a pod's pause process: rootfs `rootfs` (read-only, holding /pause),
// args ["/pause"], new PID and mount namespaces, the pod's pinned namespaces, the pod's
// security context (run_as_user etc.), cgroupsPath under the pod's parent. As
// containerd's sandbox spec: default capabilities, no_new_privs, default masked and
// readonly paths, oom_score_adj -998, cpu shares 2, the pod's seccomp profile, the pod's
// /dev/shm bound read-only, io.kubernetes.cri.* sandbox annotations.
json build_pause_spec(const std::string& sandbox_id, const SandboxContext& sandbox, const std::string& rootfs,
                      const SpecOptions& opts);

// linux.resources of the OCI spec from CRI's resources (also for `runtime update`).
// Errors name the CRI field under `field` ("linux.resources.cpu_shares: ...").
json oci_resources(const runtime::v1::LinuxContainerResources& res, const SpecOptions& opts,
                   std::string_view field = "linux.resources");

// OCI linux.cgroupsPath of a container: "<parent>/<id>" style for cgroupfs
// ("/kubepods/besteffort/pod<uid>/<id>"), "<slice>:berth:<id>" for systemd.
std::string container_cgroups_path(CgroupDriver driver, const std::string& parent, const std::string& id);

// The signal number of an image's StopSignal ("SIGQUIT", "QUIT", "3"); SIGTERM when empty.
int parse_stop_signal(std::string_view signal);

} // namespace berth::cri
