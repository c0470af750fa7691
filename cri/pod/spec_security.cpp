// Which seccomp and AppArmor profiles a container (or pause process) gets, as containerd's
// generateSeccompSpecOpts / generateApparmorSpecOpts decide: the SecurityProfile message
// when set, else the deprecated string fields ("runtime/default", "docker/default",
// "unconfined", "localhost/<ref>"; an empty seccomp string is unconfined).
#include "cri/pod/seccomp_profile.hpp"
#include "cri/pod/spec_internal.hpp"

namespace berth::cri::spec {
namespace {

using runtime::v1::SecurityProfile;

constexpr std::string_view kLocalhostPrefix = "localhost/";

SecurityProfile profile_from_string(const std::string& value, std::string_view field) {
  check_text(value, field);
  SecurityProfile p;
  if (value == "runtime/default" || value == "docker/default") {
    p.set_profile_type(SecurityProfile::RuntimeDefault);
  } else if (value == "unconfined") {
    p.set_profile_type(SecurityProfile::Unconfined);
  } else if (value.rfind(kLocalhostPrefix, 0) == 0) {
    p.set_profile_type(SecurityProfile::Localhost);
    p.set_localhost_ref(value.substr(kLocalhostPrefix.size()));
  } else {
    invalid("{}: \"{}\" is not runtime/default, docker/default, unconfined or localhost/<profile>", field, value);
  }
  return p;
}

void check_profile(const SecurityProfile& p, std::string_view field) {
  if (!SecurityProfile::ProfileType_IsValid(p.profile_type()))
    invalid("{}.profile_type: unknown type {}", field, static_cast<int>(p.profile_type()));
  if (p.profile_type() != SecurityProfile::Localhost && !p.localhost_ref().empty())
    invalid("{}.localhost_ref: set, but profile_type is not Localhost", field);
}

// The kubelet sends absolute paths; crictl and older clients "localhost/<path>",
// relative ones under the kubelet's seccomp directory.
std::string localhost_profile_path(std::string ref, std::string_view field, const SpecOptions& opts) {
  if (ref.rfind(kLocalhostPrefix, 0) == 0) ref.erase(0, kLocalhostPrefix.size());
  if (ref.empty()) invalid("{}: the Localhost profile has no path", field);
  if (ref[0] == '/') return absolute_path(ref, field);
  check_text(ref, field);
  for (std::string_view rest = ref; !rest.empty();) {
    auto slash = rest.find('/');
    if (rest.substr(0, slash) == "..") invalid("{}: \"{}\" must stay inside {}", field, ref, opts.seccomp_profile_root);
    rest = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  }
  return clean_path(opts.seccomp_profile_root + "/" + ref);
}

} // namespace

json seccomp_for(const SecurityProfile* profile, const std::string& deprecated_path, std::string_view field,
                 bool privileged, const std::vector<std::string>& bounding, const SpecOptions& opts) {
  if (privileged) return nullptr;  // privileged means unconfined, whatever was asked
  std::string profile_field = fmt::format("{}.seccomp", field);
  SecurityProfile p;
  if (profile) {
    p = *profile;
  } else {
    if (deprecated_path.empty()) return nullptr;
    profile_field = fmt::format("{}.seccomp_profile_path", field);
    p = profile_from_string(deprecated_path, profile_field);
  }
  check_profile(p, profile_field);
  switch (p.profile_type()) {
  case SecurityProfile::RuntimeDefault: return default_seccomp_profile(bounding);
  case SecurityProfile::Localhost: {
    std::string ref_field = profile ? profile_field + ".localhost_ref" : profile_field;
    std::string path = localhost_profile_path(p.localhost_ref(), ref_field, opts);
    try {
      return load_seccomp_profile(path, bounding);
    } catch (Error& e) {
      if (e.code() == 0) throw Error(EINVAL, fmt::format("{}: {}", ref_field, e.message()));
      throw e.wrap(ref_field);
    }
  }
  default: return nullptr;  // Unconfined
  }
}

std::string apparmor_for(const runtime::v1::LinuxContainerSecurityContext& sc, const SpecOptions& opts) {
  std::string field = "linux.security_context.apparmor";
  SecurityProfile p;
  bool requested = true;
  if (sc.has_apparmor()) {
    p = sc.apparmor();
  } else if (!apparmor_profile(sc).empty()) {
    field = "linux.security_context.apparmor_profile";
    p = profile_from_string(apparmor_profile(sc), field);
  } else {
    requested = false;  // the default: RuntimeDefault where AppArmor is enabled
  }
  check_profile(p, field);
  bool enabled = opts.host.apparmor_enabled && opts.host.apparmor_enabled();
  if (!enabled) {
    // As containerd: asking for confinement on a host without AppArmor is an error.
    if (requested && p.profile_type() != SecurityProfile::Unconfined)
      invalid("{}: AppArmor is not enabled on this host", field);
    return "";
  }
  if (p.profile_type() != SecurityProfile::Localhost) return "";  // no built-in AppArmor profile (yet)
  std::string name = p.localhost_ref();
  if (name.rfind(kLocalhostPrefix, 0) == 0) name.erase(0, kLocalhostPrefix.size());
  check_text(name, field, 1024);
  if (name.empty() || name.find_first_of(" \n") != std::string::npos)
    invalid("{}: \"{}\" is not an AppArmor profile name", field, name);
  if (!opts.host.apparmor_profile_loaded || !opts.host.apparmor_profile_loaded(name))
    invalid("{}: AppArmor profile \"{}\" is not loaded", field, name);
  return name;
}

} // namespace berth::cri::spec
