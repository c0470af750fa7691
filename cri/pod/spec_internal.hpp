// Internal pieces of the OCI spec builder (oci_spec.cpp and the spec_*.cpp files that
// build one part each). Not an API: berthd uses oci_spec.hpp and seccomp_profile.hpp.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api.pb.h"
#include "common/error.hpp"
#include "common/json.hpp"
#include "cri/pod/oci_spec.hpp"

namespace berth::cri::spec {

// Every builder error is the client's: EINVAL, so berthd answers INVALID_ARGUMENT.
template <typename... Args>
[[noreturn]] void invalid(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(EINVAL, fmt::format(f, std::forward<Args>(args)...));
}

// The deprecated string fields, still what critest and older kubelets send.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
inline const std::string& seccomp_profile_path(const runtime::v1::LinuxContainerSecurityContext& sc) {
  return sc.seccomp_profile_path();
}
inline const std::string& seccomp_profile_path(const runtime::v1::LinuxSandboxSecurityContext& sc) {
  return sc.seccomp_profile_path();
}
inline const std::string& apparmor_profile(const runtime::v1::LinuxContainerSecurityContext& sc) {
  return sc.apparmor_profile();
}
#pragma GCC diagnostic pop

// "field[3]" for messages.
std::string indexed(std::string_view field, size_t i);

// Rejects NUL bytes and strings longer than max (hostile clients), naming the field.
void check_text(std::string_view value, std::string_view field, size_t max = 4096);
// An absolute path without NUL, at most PATH_MAX; returns it lexically cleaned
// ("/a//b/../c" -> "/a/c").
std::string absolute_path(std::string_view value, std::string_view field);
std::string clean_path(std::string_view path);

// JSON from an untrusted source: at most max_bytes, nesting at most max_depth; errors
// (EINVAL) start with `what`.
json parse_bounded_json(std::string_view text, size_t max_bytes, int max_depth, std::string_view what);

// ---- process (spec_process.cpp) ----------------------------------------------------------

struct ProcessInput {
  const runtime::v1::ContainerConfig& config;
  const ImageConfig& image;
  const UserResolver& resolve_user;
  std::string hostname;  // HOSTNAME's value
  size_t max_env;
};
// process.args, env, cwd, terminal, user (with additionalGids), noNewPrivileges and
// oomScoreAdj. Capabilities are added by the caller (they depend on privileged).
json build_process(const ProcessInput& in, const SpecOptions& opts);

// The user part: "user" object ({uid, gid, additionalGids}) for a user string and
// supplemental groups; `field` names where the user string came from.
json resolve_process_user(const std::string& user, std::string_view field, const UserResolver& resolver,
                          const std::vector<int64_t>& supplemental, std::string_view supplemental_field,
                          bool strict_groups);

// containerd's default capability set (oci.defaultUnixCaps).
const std::vector<std::string>& default_capabilities();
// The final capability list of a container ("CAP_*", capability-number order).
std::vector<std::string> container_capabilities(const runtime::v1::LinuxContainerSecurityContext& sc,
                                                const std::vector<std::string>& all_caps);
json capabilities_object(const std::vector<std::string>& caps);
// "CAP_CHOWN" -> 0; accepts "chown", "CHOWN", "cap_chown"; nullopt when unknown.
std::optional<int> capability_number(std::string_view name);
std::string_view capability_name(int number);  // "" when unknown
int last_known_capability();

// oom_score_adj within -1000..1000, clamped to berthd's own when restricted.
int oom_score_adj(int64_t requested, std::string_view field, const SpecOptions& opts);

// ---- mounts and devices (spec_mounts.cpp) ------------------------------------------------

// The default mounts of containerd's spec minus /run: /proc, /dev, /dev/pts, /dev/shm,
// /dev/mqueue, /sys (ro unless privileged).
json default_mounts(bool privileged);
// The container's "mounts": defaults (those the request does not replace), the cgroup
// mount, then the request's mounts with the pod's files, parents first. Sets
// linux.rootfsPropagation in `linux` when a mount needs it.
json container_mounts(const ContainerSpecInput& in, const SpecOptions& opts, bool privileged, json& linux);
// linux.devices and the allow rules of linux.resources.devices for the request's devices
// (and every host device when privileged).
void add_devices(const runtime::v1::ContainerConfig& config, const SpecOptions& opts, bool privileged,
                 json& linux);
const std::vector<std::string>& default_masked_paths();
const std::vector<std::string>& default_readonly_paths();
// maskedPaths/readonlyPaths: the request's list, or the defaults when it brings none.
json path_list(const google::protobuf::RepeatedPtrField<std::string>& requested,
               const std::vector<std::string>& defaults, std::string_view field, size_t max);

// ---- security profiles (spec_security.cpp) -----------------------------------------------

// linux.seccomp for the container's (or pod's) seccomp settings; null for none.
json seccomp_for(const runtime::v1::SecurityProfile* profile, const std::string& deprecated_path,
                 std::string_view field, bool privileged, const std::vector<std::string>& bounding,
                 const SpecOptions& opts);
// process.apparmorProfile, or "" for none.
std::string apparmor_for(const runtime::v1::LinuxContainerSecurityContext& sc, const SpecOptions& opts);

} // namespace berth::cri::spec
