// A pod, a container request and a fake host for the OCI spec builder's tests: every
// host fact is fixed here, so the tests check the builder's decisions, not the machine.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "cri/pod/oci_spec.hpp"

namespace berth::cri::test {

inline const std::vector<std::string> kAllCaps = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE"};

inline const std::vector<std::string> kDefaultCaps = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
    "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
    "CAP_SETFCAP"};  // in capability-number order, as the builder lists them

// What the fake host knows.
struct FakeHost {
  int own_oom_score_adj = -500;
  std::map<std::string, std::string> propagation;  // mount path -> "shared"/"slave"; else private
  std::map<std::string, std::vector<HostDevice>> devices;
  bool apparmor = false;
  std::vector<std::string> apparmor_profiles;
  std::vector<std::string> prepared;  // bind sources asked for, in order
};

class SpecTest : public ::testing::Test {
protected:
  SpecTest() {
    auto* meta = pod_.mutable_metadata();
    meta->set_name("web");
    meta->set_namespace_("default");
    meta->set_uid("pod-uid-1");
    pod_.set_hostname("web-0");
    pod_.set_log_directory("/var/log/pods/default_web_pod-uid-1");
    pod_.mutable_linux()->set_cgroup_parent("/kubepods/besteffort/podpod-uid-1");

    sandbox_.id = "sandbox-1";
    sandbox_.config = &pod_;
    sandbox_.netns_path = "/run/berthd/pods/sandbox-1/net";
    sandbox_.ipcns_path = "/run/berthd/pods/sandbox-1/ipc";
    sandbox_.utsns_path = "/run/berthd/pods/sandbox-1/uts";
    sandbox_.pidns_path = "/proc/4242/ns/pid";
    sandbox_.hostname_path = "/var/lib/berthd/pods/sandbox-1/hostname";
    sandbox_.hosts_path = "/var/lib/berthd/pods/sandbox-1/hosts";
    sandbox_.resolv_conf_path = "/var/lib/berthd/pods/sandbox-1/resolv.conf";
    sandbox_.shm_path = "/run/berthd/pods/sandbox-1/shm";
    sandbox_.cgroup_parent = pod_.linux().cgroup_parent();

    config_.mutable_metadata()->set_name("app");
    config_.mutable_image()->set_image("docker.io/library/busybox:latest");
    config_.add_command("sh");

    in_.id = "ctr-1";
    in_.config = &config_;
    in_.sandbox = &sandbox_;
    in_.rootfs = "/var/lib/berthd/containers/ctr-1/rootfs";
    // Like runc's lookup: a number needs no entry (gid 0), a name does; users_ holds
    // the entries of the "image's" /etc/passwd and /etc/group.
    in_.resolve_user = [this](const std::string& user) {
      resolved_users_.push_back(user);
      auto colon = user.find(':');
      std::string name = user.substr(0, colon);
      auto digits = [](const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == s.npos; };
      ResolvedUser r;
      if (users_.count(name)) r = users_.at(name);
      else if (name == "nobody") r = ResolvedUser{65534, 65534, {}, "/"};
      else if (digits(name)) r = ResolvedUser{static_cast<uint32_t>(std::stoul(name)), 0, {}, ""};
      else throw Error(EINVAL, "unable to find user " + name);
      if (colon != std::string::npos) {
        std::string group = user.substr(colon + 1);
        if (digits(group)) r.gid = static_cast<uint32_t>(std::stoul(group));
        else if (group == "staff") r.gid = 50;
        else throw Error(EINVAL, "unable to find group " + group);
      }
      return r;
    };

    FakeHost* host = &host_;
    opts_.host.capabilities = [] { return kAllCaps; };
    opts_.host.oom_score_adj = [host] { return host->own_oom_score_adj; };
    opts_.host.hostname = [] { return std::string("node-1"); };
    opts_.host.prepare_bind_source = [host](const std::string& p) {
      host->prepared.push_back(p);
      return p;
    };
    opts_.host.mount_propagation = [host](const std::string& p) {
      return host->propagation.count(p) ? host->propagation.at(p) : std::string("private");
    };
    opts_.host.devices_at = [host](const std::string& p) {
      if (!host->devices.count(p)) throw Error(ENOENT, "stat " + p);
      return host->devices.at(p);
    };
    opts_.host.apparmor_enabled = [host] { return host->apparmor; };
    opts_.host.apparmor_profile_loaded = [host](const std::string& name) {
      return std::find(host->apparmor_profiles.begin(), host->apparmor_profiles.end(), name) !=
             host->apparmor_profiles.end();
    };
  }

  runtime::v1::LinuxContainerSecurityContext* sc() { return config_.mutable_linux()->mutable_security_context(); }
  runtime::v1::LinuxSandboxSecurityContext* pod_sc() { return pod_.mutable_linux()->mutable_security_context(); }

  json build() { return build_container_spec(in_, opts_); }

  // The builder's error message, or "" when it succeeded.
  template <typename Fn>
  static std::string error_of(Fn&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL) << e.what();
      return e.what();
    }
    return "";
  }
  std::string build_error() {
    return error_of([&] { build(); });
  }

  static const json* find_by(const json& list, const char* key, std::string_view value) {
    for (const auto& e : list)
      if (e.value(key, "") == value) return &e;
    return nullptr;
  }
  static const json* mount_at(const json& spec, std::string_view dest) {
    return find_by(spec["mounts"], "destination", dest);
  }
  static const json* namespace_of(const json& spec, std::string_view type) {
    return find_by(spec["linux"]["namespaces"], "type", type);
  }

  runtime::v1::PodSandboxConfig pod_;
  SandboxContext sandbox_;
  runtime::v1::ContainerConfig config_;
  ContainerSpecInput in_;
  SpecOptions opts_;
  FakeHost host_;
  std::map<std::string, ResolvedUser> users_;
  std::vector<std::string> resolved_users_;
};

} // namespace berth::cri::test
