// What the pod contributes to a container's config.json (namespaces, cgroups path,
// annotations), resources, AppArmor, the pause process's spec, and the image config.
#include <csignal>

// critest sends the deprecated string fields (apparmor_profile, seccomp_profile_path).
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "cri/pod/tests/spec_fixture.hpp"

namespace berth::cri::test {
namespace {

using Strings = std::vector<std::string>;

class PodSpecTest : public SpecTest {
protected:
  json namespaces() { return build()["linux"]["namespaces"]; }
};

TEST_F(PodSpecTest, NamespacesJoinThePodsPins) {
  EXPECT_EQ(namespaces(), json::parse(R"([
    {"type":"pid","path":"/proc/4242/ns/pid"},
    {"type":"ipc","path":"/run/berthd/pods/sandbox-1/ipc"},
    {"type":"uts","path":"/run/berthd/pods/sandbox-1/uts"},
    {"type":"mount"},
    {"type":"network","path":"/run/berthd/pods/sandbox-1/net"},
    {"type":"cgroup"}])"));
}

TEST_F(PodSpecTest, HostNamespacesHaveNoEntry) {
  sandbox_.netns_path.clear();
  sandbox_.utsns_path.clear();
  sandbox_.ipcns_path.clear();
  pod_sc()->mutable_namespace_options()->set_pid(runtime::v1::NODE);
  sc()->mutable_namespace_options()->set_pid(runtime::v1::NODE);
  EXPECT_EQ(namespaces(), json::parse(R"([{"type":"mount"},{"type":"cgroup"}])"));
  // A container asking for POD in a host-PID pod gets the host's too (containerd joins the
  // sandbox's, which is the host's).
  sc()->mutable_namespace_options()->set_pid(runtime::v1::POD);
  EXPECT_EQ(namespace_of(build(), "pid"), nullptr);
}

TEST_F(PodSpecTest, PidModes) {
  sc()->mutable_namespace_options()->set_pid(runtime::v1::CONTAINER);
  EXPECT_EQ(*namespace_of(build(), "pid"), (json{{"type", "pid"}}));
  sc()->mutable_namespace_options()->set_pid(runtime::v1::TARGET);
  sc()->mutable_namespace_options()->set_target_id("other");
  in_.target_pidns_path = "/proc/77/ns/pid";
  EXPECT_EQ(*namespace_of(build(), "pid"), (json{{"type", "pid"}, {"path", "/proc/77/ns/pid"}}));
  in_.target_pidns_path.clear();
  EXPECT_NE(build_error().find("namespace_options.target_id: the PID namespace of target \"other\" is unknown"),
            std::string::npos);
}

TEST_F(PodSpecTest, PidModeErrors) {
  sc()->mutable_namespace_options()->set_pid(runtime::v1::NODE);
  EXPECT_NE(build_error().find("linux.security_context.namespace_options.pid: NODE, but the pod does not use the "
                               "node's PID namespace"),
            std::string::npos);
  // POD in a pod without a shared PID namespace (no pause process): the container's own.
  sc()->mutable_namespace_options()->set_pid(runtime::v1::POD);
  sandbox_.pidns_path.clear();
  EXPECT_EQ(*namespace_of(build(), "pid"), (json{{"type", "pid"}}));
  sc()->mutable_namespace_options()->mutable_userns_options()->set_mode(runtime::v1::POD);
  sc()->mutable_namespace_options()->set_pid(runtime::v1::CONTAINER);
  EXPECT_NE(build_error().find("userns_options.mode: user namespaces are not supported"), std::string::npos);
}

TEST_F(PodSpecTest, CgroupsPath) {
  EXPECT_EQ(build()["linux"]["cgroupsPath"], "/kubepods/besteffort/podpod-uid-1/ctr-1");
  EXPECT_EQ(container_cgroups_path(CgroupDriver::cgroupfs, "kubepods//burstable/", "c"), "kubepods/burstable/c");
  EXPECT_EQ(container_cgroups_path(CgroupDriver::systemd, "/kubepods.slice/kubepods-besteffort.slice/"
                                                          "kubepods-besteffort-pod1.slice", "c"),
            "kubepods-besteffort-pod1.slice:berth:c");
  EXPECT_EQ(container_cgroups_path(CgroupDriver::cgroupfs, "", "c"), "");
  EXPECT_NE(error_of([] { container_cgroups_path(CgroupDriver::systemd, "/kubepods/pod1", "c"); })
                .find("is not a systemd slice"),
            std::string::npos);
  EXPECT_NE(error_of([] { container_cgroups_path(CgroupDriver::cgroupfs, "/kubepods/../..", "c"); })
                .find("sandbox_config.linux.cgroup_parent: \"/kubepods/../..\" must not contain .."),
            std::string::npos);
  EXPECT_NE(error_of([] { container_cgroups_path(CgroupDriver::cgroupfs, "/k", "a/b"); }).find("not a valid ID"),
            std::string::npos);
  // berthd's parent for the pod wins over the request's; none at all: no cgroupsPath.
  sandbox_.cgroup_parent = "/berthd/pods";
  EXPECT_EQ(build()["linux"]["cgroupsPath"], "/berthd/pods/ctr-1");
  sandbox_.cgroup_parent.clear();
  EXPECT_EQ(build()["linux"]["cgroupsPath"], "/kubepods/besteffort/podpod-uid-1/ctr-1");
  pod_.mutable_linux()->clear_cgroup_parent();
  EXPECT_FALSE(build()["linux"].contains("cgroupsPath"));
}

TEST_F(PodSpecTest, AnnotationsAsContainerdPlusTheRequestsOwn) {
  (*config_.mutable_annotations())["io.kubernetes.container.hash"] = "abc";
  (*config_.mutable_annotations())["io.kubernetes.cri.sandbox-id"] = "spoofed";
  (*config_.mutable_annotations())["org.systemd.property.Delegate"] = "yes";
  (*config_.mutable_annotations())["run.oci.keep_original_groups"] = "1";
  config_.mutable_image()->set_user_specified_image("busybox");
  EXPECT_EQ(build()["annotations"], (json{{"io.kubernetes.container.hash", "abc"},
                                          {"io.kubernetes.cri.container-type", "container"},
                                          {"io.kubernetes.cri.container-name", "app"},
                                          {"io.kubernetes.cri.image-name", "busybox"},
                                          {"io.kubernetes.cri.sandbox-id", "sandbox-1"},
                                          {"io.kubernetes.cri.sandbox-name", "web"},
                                          {"io.kubernetes.cri.sandbox-namespace", "default"},
                                          {"io.kubernetes.cri.sandbox-uid", "pod-uid-1"}}));
  in_.image_name = "docker.io/library/busybox:1.36";
  EXPECT_EQ(build()["annotations"]["io.kubernetes.cri.image-name"], "docker.io/library/busybox:1.36");
  (*config_.mutable_annotations())["big"] = std::string(300 * 1024, 'x');
  EXPECT_NE(build_error().find("annotations: more than 262144 bytes in all"), std::string::npos);
}

TEST_F(PodSpecTest, Resources) {
  auto* r = config_.mutable_linux()->mutable_resources();
  r->set_cpu_period(100000);
  r->set_cpu_quota(50000);
  r->set_cpu_shares(512);
  r->set_cpuset_cpus("0-1,3");
  r->set_cpuset_mems("0");
  r->set_memory_limit_in_bytes(256 << 20);
  auto* h = r->add_hugepage_limits();
  h->set_page_size("2MB");
  h->set_limit(4 << 20);
  (*r->mutable_unified())["memory.high"] = "200M";
  json res = build()["linux"]["resources"];
  EXPECT_EQ(res["cpu"], json::parse(R"({"period":100000,"quota":50000,"shares":512,"cpus":"0-1,3","mems":"0"})"));
  // No swap unless asked: memory+swap equals memory.
  EXPECT_EQ(res["memory"], (json{{"limit", 256 << 20}, {"swap", 256 << 20}}));
  EXPECT_EQ(res["hugepageLimits"], json::parse(R"([{"pageSize":"2MB","limit":4194304}])"));
  EXPECT_EQ(res["unified"], (json{{"memory.high", "200M"}}));
  EXPECT_EQ(res["devices"], json::parse(R"([{"allow":false,"access":"rwm"}])"));
  r->set_memory_swap_limit_in_bytes(512 << 20);
  EXPECT_EQ(build()["linux"]["resources"]["memory"]["swap"], 512 << 20);
  // Nothing set: no cpu or memory objects.
  runtime::v1::LinuxContainerResources none;
  EXPECT_EQ(oci_resources(none, opts_), json::object());
}

TEST_F(PodSpecTest, ResourceErrorsNameTheField) {
  auto err = [&](auto&& set) {
    runtime::v1::LinuxContainerResources r;
    set(r);
    return error_of([&] { oci_resources(r, opts_, "linux"); });
  };
  using R = runtime::v1::LinuxContainerResources;
  EXPECT_NE(err([](R& r) { r.set_cpu_shares(-2); }).find("linux.cpu_shares: -2 is not"), std::string::npos);
  EXPECT_NE(err([](R& r) { r.set_cpu_quota(-5); }).find("linux.cpu_quota: -5 is not"), std::string::npos);
  EXPECT_NE(err([](R& r) { r.set_cpuset_cpus("0-3;rm"); }).find("linux.cpuset_cpus: \"0-3;rm\" is not a list"),
            std::string::npos);
  EXPECT_NE(err([](R& r) { r.set_memory_swap_limit_in_bytes(1 << 20); })
                .find("linux.memory_swap_limit_in_bytes: a swap limit needs memory_limit_in_bytes"),
            std::string::npos);
  EXPECT_NE(err([](R& r) {
              r.set_memory_limit_in_bytes(2 << 20);
              r.set_memory_swap_limit_in_bytes(1 << 20);
            }).find("is below memory_limit_in_bytes"),
            std::string::npos);
  EXPECT_NE(err([](R& r) { r.add_hugepage_limits()->set_page_size("2Mi"); })
                .find("linux.hugepage_limits[0].page_size: \"2Mi\" is not a page size"),
            std::string::npos);
  EXPECT_NE(err([](R& r) { (*r.mutable_unified())["../cgroup.procs"] = "1"; }).find("is not a cgroup file name"),
            std::string::npos);
  EXPECT_EQ(err([](R& r) {
              r.set_memory_limit_in_bytes(-1);
              r.set_cpu_quota(-1);
            }),
            "");
}

TEST_F(PodSpecTest, AppArmor) {
  sc()->set_apparmor_profile("localhost/deny-write");
  EXPECT_NE(build_error().find("linux.security_context.apparmor_profile: AppArmor is not enabled on this host"),
            std::string::npos);
  sc()->set_apparmor_profile("unconfined");
  EXPECT_FALSE(build()["process"].contains("apparmorProfile"));
  host_.apparmor = true;
  host_.apparmor_profiles = {"deny-write"};
  sc()->mutable_apparmor()->set_profile_type(runtime::v1::SecurityProfile::Localhost);
  sc()->mutable_apparmor()->set_localhost_ref("deny-write");
  EXPECT_EQ(build()["process"]["apparmorProfile"], "deny-write");
  sc()->mutable_apparmor()->set_localhost_ref("non-existent-profile");
  EXPECT_NE(build_error().find("linux.security_context.apparmor: AppArmor profile \"non-existent-profile\" is not "
                               "loaded"),
            std::string::npos);
  sc()->mutable_apparmor()->set_profile_type(runtime::v1::SecurityProfile::RuntimeDefault);
  EXPECT_NE(build_error().find("apparmor.localhost_ref: set, but profile_type is not Localhost"), std::string::npos);
}

TEST_F(PodSpecTest, PauseSpec) {
  EXPECT_EQ(build_pause_spec("sandbox-1", sandbox_, "/r", opts_)["process"]["user"],
            (json{{"uid", 65535}, {"gid", 65535}, {"additionalGids", {65535}}}));
  pod_sc()->mutable_run_as_user()->set_value(1000);
  pod_sc()->add_supplemental_groups(7);
  pod_sc()->set_seccomp_profile_path("runtime/default");
  auto* r = pod_.mutable_linux()->mutable_resources();
  r->set_cpu_shares(1024);
  r->set_memory_limit_in_bytes(1 << 30);
  json s = build_pause_spec("sandbox-1", sandbox_, "/var/lib/berthd/pause/rootfs", opts_);
  EXPECT_EQ(s["root"], (json{{"path", "/var/lib/berthd/pause/rootfs"}, {"readonly", true}}));
  const json& p = s["process"];
  EXPECT_EQ(p["args"], Strings{"/pause"});
  EXPECT_EQ(p["user"], (json{{"uid", 1000}, {"gid", 0}, {"additionalGids", {0, 7}}}));
  EXPECT_EQ(p["noNewPrivileges"], true);
  EXPECT_EQ(p["oomScoreAdj"], -998);
  EXPECT_EQ(p["capabilities"]["bounding"].size(), kDefaultCaps.size());
  const json& l = s["linux"];
  EXPECT_EQ(l["namespaces"], json::parse(R"([{"type":"pid"},
    {"type":"ipc","path":"/run/berthd/pods/sandbox-1/ipc"}, {"type":"uts","path":"/run/berthd/pods/sandbox-1/uts"},
    {"type":"mount"}, {"type":"network","path":"/run/berthd/pods/sandbox-1/net"}])"));
  EXPECT_EQ(l["cgroupsPath"], "/kubepods/besteffort/podpod-uid-1/sandbox-1");
  EXPECT_EQ(l["resources"]["cpu"]["shares"], 2);
  EXPECT_EQ(l["maskedPaths"].size(), 11u);
  EXPECT_EQ(l["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(*mount_at(s, "/dev/shm"), (json{{"destination", "/dev/shm"}, {"type", "bind"},
                                            {"source", sandbox_.shm_path},
                                            {"options", {"rbind", "ro", "nosuid", "nodev", "noexec"}}}));
  EXPECT_EQ(s["annotations"]["io.kubernetes.cri.container-type"], "sandbox");
  EXPECT_EQ(s["annotations"]["io.kubernetes.cri.sandbox-log-directory"], pod_.log_directory());
  EXPECT_EQ(s["annotations"]["io.kubernetes.cri.sandbox-cpu-shares"], "1024");
  EXPECT_EQ(s["annotations"]["io.kubernetes.cri.sandbox-memory"], "1073741824");
  opts_.restrict_oom_score_adj = true;
  EXPECT_EQ(build_pause_spec("sandbox-1", sandbox_, "/r", opts_)["process"]["oomScoreAdj"], -500);
  pod_sc()->set_privileged(true);
  EXPECT_FALSE(build_pause_spec("sandbox-1", sandbox_, "/r", opts_)["linux"].contains("seccomp"));
}

TEST_F(PodSpecTest, PauseSpecErrors) {
  pod_sc()->mutable_run_as_group()->set_value(5);
  EXPECT_NE(error_of([&] { build_pause_spec("s", sandbox_, "/r", opts_); })
                .find("linux.security_context.run_as_group: group 5 is set without run_as_user"),
            std::string::npos);
  pod_sc()->mutable_run_as_user()->set_value(-3);
  EXPECT_NE(error_of([&] { build_pause_spec("s", sandbox_, "/r", opts_); }).find("run_as_user: -3 is out of range"),
            std::string::npos);
  pod_sc()->clear_run_as_user();
  pod_sc()->clear_run_as_group();
  pod_sc()->set_seccomp_profile_path("/abs/profile.json");
  EXPECT_NE(error_of([&] { build_pause_spec("s", sandbox_, "/r", opts_); })
                .find("linux.security_context.seccomp_profile_path: \"/abs/profile.json\" is not runtime/default"),
            std::string::npos);
}

TEST(ImageConfigTest, ParsesWhatBerthdUses) {
  ImageConfig c = parse_image_config(R"({"architecture":"amd64","config":{
      "Entrypoint":["/entry"],"Cmd":null,"Env":["PATH=/bin","A=b"],"WorkingDir":"/srv","User":"www-data:1004",
      "StopSignal":"SIGQUIT","Volumes":{"/data":{},"cache":{},"/x/../y":{}},"Labels":{"a":"b"}},
      "rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x"}]})");
  EXPECT_EQ(c.entrypoint, Strings{"/entry"});
  EXPECT_TRUE(c.cmd.empty());
  EXPECT_EQ(c.env, (Strings{"PATH=/bin", "A=b"}));
  EXPECT_EQ(c.working_dir, "/srv");
  EXPECT_EQ(c.user, "www-data:1004");
  EXPECT_EQ(c.stop_signal, "SIGQUIT");
  EXPECT_EQ(c.volumes, (Strings{"/cache", "/data", "/y"}));
  EXPECT_TRUE(parse_image_config(R"({"architecture":"amd64"})").entrypoint.empty());
}

TEST(ImageConfigTest, HostileConfigsAreErrorsNamingTheField) {
  auto err = [](std::string_view text) {
    try {
      parse_image_config(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL);
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err(R"({"config":{"Cmd":"sh"}})").find("image config: config.Cmd: expected an array of strings"),
            std::string::npos);
  EXPECT_NE(err(R"({"config":{"Env":[1]}})").find("config.Env[0]: expected a string"), std::string::npos);
  EXPECT_NE(err(R"({"config":{"User":7}})").find("config.User: expected a string"), std::string::npos);
  EXPECT_NE(err(R"({"config":[]})").find("config: expected an object"), std::string::npos);
  EXPECT_NE(err("[1,2]").find("expected an object"), std::string::npos);
  EXPECT_NE(err("{\"config\":").find("image config: invalid JSON"), std::string::npos);
  EXPECT_NE(err(std::string(100000, '[') + std::string(100000, ']')).find("nested deeper than 32 levels"),
            std::string::npos);
  std::string huge = R"({"history":[")" + std::string(9 << 20, 'x') + R"("]})";
  EXPECT_NE(err(huge).find("bytes, at most 8388608 are accepted"), std::string::npos);
  EXPECT_NE(err(R"({"config":{"Cmd":["a\u0000b"]}})").find("config.Cmd[0]: must not contain a NUL byte"),
            std::string::npos);
}

TEST(StopSignalTest, Names) {
  EXPECT_EQ(parse_stop_signal(""), SIGTERM);
  EXPECT_EQ(parse_stop_signal("SIGQUIT"), SIGQUIT);
  EXPECT_EQ(parse_stop_signal("quit"), SIGQUIT);
  EXPECT_EQ(parse_stop_signal("9"), SIGKILL);
  EXPECT_EQ(parse_stop_signal("SIGRTMIN+3"), SIGRTMIN + 3);
  EXPECT_EQ(parse_stop_signal("RTMAX-1"), SIGRTMAX - 1);
  EXPECT_EQ(parse_stop_signal("SIGWINCH"), SIGWINCH);
  for (const char* bad : {"SIGFOO", "0", "65", "-1", "RTMIN+99", "SIG"})
    EXPECT_THROW(parse_stop_signal(bad), Error) << bad;
}

} // namespace
} // namespace berth::cri::test
