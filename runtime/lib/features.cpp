#include "runtime/lib/features.hpp"

#include <seccomp.h>

#include <fmt/format.h>

#include "common/fs.hpp"
#include "runtime/lib/capabilities.hpp"
#include "runtime/lib/cgroup.hpp"
#include "runtime/lib/rootfs.hpp"
#include "runtime/lib/seccomp.hpp"

namespace berth {

nlohmann::ordered_json features_document() {
  using ojson = nlohmann::ordered_json;
  const scmp_version* v = seccomp_version();
  auto apparmor = try_read_file("/sys/module/apparmor/parameters/enabled");
  ojson doc = {
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", "1.2.0"},
      {"hooks", {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}},
      {"mountOptions", known_mount_options()},
      {"linux",
       {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}},
        {"capabilities", all_capability_names()},
        {"cgroup", {{"v1", false}, {"v2", !cgroup2_root().empty()}, {"systemd", systemd_driver_available()}, {"systemdUser", false},
                    {"rdma", true}}},
        {"seccomp",
         {{"enabled", true},
          {"actions", seccomp::known_actions()},
          {"operators", seccomp::known_operators()},
          {"archs", seccomp::known_archs()},
          {"knownFlags", seccomp::known_flags()},
          {"supportedFlags", seccomp::supported_flags()}}},
        {"apparmor", {{"enabled", apparmor && trim(*apparmor) == "Y"}}},
        {"selinux", {{"enabled", path_exists("/sys/fs/selinux/enforce")}}},
        {"intelRdt", {{"enabled", false}}},
        {"mountExtensions", {{"idmap", {{"enabled", true}}}}},
        {"netDevices", {{"enabled", false}}}}},
      {"annotations",
       {{"io.github.seccomp.libseccomp.version", fmt::format("{}.{}.{}", v->major, v->minor, v->micro)},
        {"org.opencontainers.runc.checkpoint.enabled", "false"},
        {"run.berth.version", BERTH_VERSION}}}};
  return doc;
}

} // namespace berth
