// The process part of a container's config.json: args, env, cwd, user and groups,
// capabilities, privileged, no_new_privs, read-only root, oom_score_adj, terminal.
#include "cri/pod/tests/spec_fixture.hpp"

// critest sends the deprecated seccomp_profile_path.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace berth::cri::test {
namespace {

using Strings = std::vector<std::string>;

class ProcessSpecTest : public SpecTest {
protected:
  // The bounding set after adding and dropping these.
  Strings caps_with(std::initializer_list<const char*> add, std::initializer_list<const char*> drop) {
    auto* c = sc()->mutable_capabilities();
    c->Clear();
    for (auto* a : add) c->add_add_capabilities(a);
    for (auto* d : drop) c->add_drop_capabilities(d);
    return build()["process"]["capabilities"]["bounding"].get<Strings>();
  }
};

TEST_F(ProcessSpecTest, DefaultContainerLooksLikeContainerds) {
  json s = build();
  EXPECT_EQ(s["ociVersion"], "1.2.0");
  EXPECT_EQ(s["root"], (json{{"path", "/var/lib/berthd/containers/ctr-1/rootfs"}, {"readonly", false}}));
  const json& p = s["process"];
  EXPECT_EQ(p["args"], (Strings{"sh"}));
  EXPECT_EQ(p["cwd"], "/");
  EXPECT_EQ(p["terminal"], false);
  EXPECT_EQ(p["noNewPrivileges"], false);
  EXPECT_EQ(p["user"], (json{{"uid", 0}, {"gid", 0}, {"additionalGids", {0}}}));
  EXPECT_EQ(p["capabilities"]["bounding"], kDefaultCaps);
  EXPECT_EQ(p["capabilities"]["effective"], kDefaultCaps);
  EXPECT_EQ(p["capabilities"]["permitted"], kDefaultCaps);
  EXPECT_FALSE(p["capabilities"].contains("ambient"));
  EXPECT_FALSE(p.contains("rlimits"));  // containerd's CRI drops the default RLIMIT_NOFILE
  EXPECT_FALSE(p.contains("oomScoreAdj"));  // no resources in the request
  EXPECT_FALSE(s.contains("hostname"));     // the pinned UTS namespace has it
  EXPECT_EQ(resolved_users_, Strings{"0"});  // root's groups are still looked up
}

struct ArgsCase {
  Strings command, args, entrypoint, cmd, want;
};

class ArgsTest : public SpecTest, public ::testing::WithParamInterface<ArgsCase> {};

TEST_P(ArgsTest, MergesRequestAndImageAsContainerd) {
  const auto& c = GetParam();
  config_.clear_command();
  for (const auto& a : c.command) config_.add_command(a);
  for (const auto& a : c.args) config_.add_args(a);
  in_.image.entrypoint = c.entrypoint;
  in_.image.cmd = c.cmd;
  EXPECT_EQ(build()["process"]["args"], c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ArgsTest,
    ::testing::Values(
        // Image only: entrypoint + cmd.
        ArgsCase{{}, {}, {"/docker-entrypoint.sh"}, {"nginx", "-g", "daemon off;"},
                 {"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}},
        // args replace the image's cmd, the entrypoint stays.
        ArgsCase{{}, {"-v"}, {"/entry"}, {"serve"}, {"/entry", "-v"}},
        // command replaces the entrypoint and drops the cmd.
        ArgsCase{{"/bin/top"}, {}, {"/entry"}, {"serve"}, {"/bin/top"}},
        // command and args: both from the request.
        ArgsCase{{"sh", "-c"}, {"echo hi"}, {"/entry"}, {"serve"}, {"sh", "-c", "echo hi"}},
        // ENTRYPOINT [""] clears the entrypoint.
        ArgsCase{{}, {}, {""}, {"sh"}, {"sh"}},
        ArgsCase{{}, {}, {}, {"sh", "-c", "top"}, {"sh", "-c", "top"}}));

TEST_F(ProcessSpecTest, NoCommandAnywhereIsAnError) {
  config_.clear_command();
  EXPECT_NE(build_error().find("command: no command specified"), std::string::npos);
  config_.add_command("");
  EXPECT_NE(build_error().find("command: the program (the first word) must not be empty"), std::string::npos);
}

TEST_F(ProcessSpecTest, HostileArgsNameTheirField) {
  config_.add_args(std::string("a\0b", 3));
  EXPECT_NE(build_error().find("args[0]: must not contain a NUL byte"), std::string::npos);
  config_.clear_args();
  config_.add_args(std::string(200 * 1024, 'x'));
  EXPECT_NE(build_error().find("args[0]: 204800 bytes is longer than the kernel's limit"), std::string::npos);
  config_.clear_args();
  for (int i = 0; i < 40; i++) config_.add_args(std::string(100 * 1024, 'x'));
  EXPECT_NE(build_error().find("exceed 2097152 bytes"), std::string::npos);
}

TEST_F(ProcessSpecTest, EnvIsPathHostnameImageThenRequestLaterWins) {
  in_.image.env = {"PATH=/opt/bin:/usr/bin", "LANG=C", "DEBUG=1", "HOSTNAME=from-image"};
  auto add = [&](const char* k, const char* v) {
    auto* kv = config_.add_envs();
    kv->set_key(k);
    kv->set_value(v);
  };
  add("LANG", "en_US.UTF-8");
  add("EMPTY", "");
  add("URL", "http://x/?a=b");
  EXPECT_EQ(build()["process"]["env"], (Strings{"PATH=/opt/bin:/usr/bin", "HOSTNAME=from-image", "LANG=en_US.UTF-8",
                                                "DEBUG=1", "EMPTY=", "URL=http://x/?a=b"}));
}

TEST_F(ProcessSpecTest, EnvOfATtyHasTermAndANodeHostnameWhenThePodHasNone) {
  config_.set_tty(true);
  pod_.clear_hostname();
  json p = build()["process"];
  EXPECT_EQ(p["terminal"], true);
  EXPECT_EQ(p["env"], (Strings{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm",
                               "HOSTNAME=node-1"}));
}

TEST_F(ProcessSpecTest, TheLastOfRepeatedKeysWinsInThePlaceOfTheFirst) {
  in_.image.env = {"A=image", "B=image"};
  for (const char* v : {"1", "2"}) {
    auto* kv = config_.add_envs();
    kv->set_key("A");
    kv->set_value(v);
  }
  EXPECT_EQ(build()["process"]["env"],
            (Strings{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=web-0", "A=2",
                     "B=image"}));
}

TEST_F(ProcessSpecTest, ThousandsOfVariablesMergeQuickly) {
  opts_.max_env = 10000;
  for (int i = 0; i < 4000; i++) {
    in_.image.env.push_back(fmt::format("K{}=image", i));
    auto* kv = config_.add_envs();
    kv->set_key(fmt::format("K{}", i * 2));
    kv->set_value("request");
  }
  json env = build()["process"]["env"];
  EXPECT_EQ(env.size(), 2u + 4000 + 2000);
  EXPECT_EQ(env[2], "K0=request");
  EXPECT_EQ(env[3], "K1=image");
}

TEST_F(ProcessSpecTest, AnImageEnvEntryWithoutValueUnsetsTheVariable) {
  in_.image.env = {"TERM"};
  config_.set_tty(true);
  EXPECT_EQ(build()["process"]["env"].size(), 2u);  // PATH, HOSTNAME
}

TEST_F(ProcessSpecTest, BadEnvNamesTheField) {
  auto* kv = config_.add_envs();
  kv->set_key("A=B");
  EXPECT_NE(build_error().find("envs[0].key: \"A=B\" must not contain '='"), std::string::npos);
  kv->set_key("");
  EXPECT_NE(build_error().find("envs[0].key: must not be empty"), std::string::npos);
  kv->set_key("A");
  kv->set_value(std::string("x\0y", 3));
  EXPECT_NE(build_error().find("envs[0]: must not contain a NUL byte"), std::string::npos);
  opts_.max_env = 1;
  config_.add_envs()->set_key("B");
  EXPECT_NE(build_error().find("envs: 2 variables, at most 1 are accepted"), std::string::npos);
}

TEST_F(ProcessSpecTest, CwdFromRequestThenImage) {
  in_.image.working_dir = "/srv/app/";
  EXPECT_EQ(build()["process"]["cwd"], "/srv/app");
  config_.set_working_dir("/work//dir");
  EXPECT_EQ(build()["process"]["cwd"], "/work/dir");
  config_.set_working_dir("relative");
  EXPECT_NE(build_error().find("working_dir: \"relative\" must be an absolute path"), std::string::npos);
  config_.clear_working_dir();
  in_.image.working_dir = "app";
  EXPECT_NE(build_error().find("image config WorkingDir: \"app\" must be an absolute path"), std::string::npos);
}

TEST_F(ProcessSpecTest, RunAsUserLooksTheUserUp) {
  users_["1000"] = ResolvedUser{1000, 1000, {50000}, "/home/default-user"};
  sc()->mutable_run_as_user()->set_value(1000);
  sc()->add_supplemental_groups(1234);
  // critest: "id -G" must print 1000 1234 50000.
  EXPECT_EQ(build()["process"]["user"], (json{{"uid", 1000}, {"gid", 1000}, {"additionalGids", {1000, 1234, 50000}}}));
  EXPECT_EQ(resolved_users_, Strings{"1000"});
}

TEST_F(ProcessSpecTest, UserWithoutPasswdEntryGetsGroupZero) {
  sc()->mutable_run_as_user()->set_value(1001);
  EXPECT_EQ(build()["process"]["user"], (json{{"uid", 1001}, {"gid", 0}, {"additionalGids", {0}}}));
}

TEST_F(ProcessSpecTest, RunAsGroupAndUsername) {
  sc()->mutable_run_as_user()->set_value(1001);
  sc()->mutable_run_as_group()->set_value(1002);
  EXPECT_EQ(build()["process"]["user"]["gid"], 1002);
  EXPECT_EQ(resolved_users_.back(), "1001:1002");
  sc()->set_run_as_username("nobody");  // wins over run_as_user, as in containerd
  sc()->clear_run_as_group();
  EXPECT_EQ(build()["process"]["user"]["uid"], 65534);
  EXPECT_EQ(resolved_users_.back(), "nobody");
}

TEST_F(ProcessSpecTest, ImageUserWhenTheRequestHasNone) {
  users_["www-data"] = ResolvedUser{33, 33, {4}, "/var/www"};
  in_.image.user = "www-data:staff";
  EXPECT_EQ(build()["process"]["user"], (json{{"uid", 33}, {"gid", 50}, {"additionalGids", {4, 50}}}));
}

TEST_F(ProcessSpecTest, StrictSupplementalGroupsIgnoreTheImagesGroups) {
  users_["1000"] = ResolvedUser{1000, 1000, {50000}, ""};
  sc()->mutable_run_as_user()->set_value(1000);
  sc()->add_supplemental_groups(1234);
  sc()->set_supplemental_groups_policy(runtime::v1::Strict);
  EXPECT_EQ(build()["process"]["user"]["additionalGids"], (std::vector<int>{1000, 1234}));
}

TEST_F(ProcessSpecTest, UserErrorsNameTheField) {
  sc()->mutable_run_as_group()->set_value(1002);
  EXPECT_NE(build_error().find("linux.security_context.run_as_group: group 1002 is set without run_as_user"),
            std::string::npos);
  sc()->mutable_run_as_user()->set_value(-1);
  EXPECT_NE(build_error().find("linux.security_context.run_as_user: -1 is out of range"), std::string::npos);
  sc()->mutable_run_as_user()->set_value(int64_t{1} << 32);
  EXPECT_NE(build_error().find("run_as_user: 4294967296 is out of range"), std::string::npos);
  sc()->clear_run_as_user();
  sc()->clear_run_as_group();
  sc()->set_run_as_username("ghost");
  EXPECT_NE(build_error().find("linux.security_context.run_as_username: unable to find user ghost"),
            std::string::npos);
  sc()->set_run_as_username("a:b");
  EXPECT_NE(build_error().find("run_as_username: \"a:b\" must not contain ':'"), std::string::npos);
  sc()->clear_run_as_username();
  sc()->add_supplemental_groups(-5);
  EXPECT_NE(build_error().find("linux.security_context.supplemental_groups[0]: -5 is out of range"),
            std::string::npos);
}

TEST_F(ProcessSpecTest, WithoutAResolverOnlyNumbersResolve) {
  in_.resolve_user = nullptr;
  sc()->mutable_run_as_user()->set_value(7);
  EXPECT_EQ(build()["process"]["user"]["uid"], 7);
  in_.image.user = "app";
  sc()->clear_run_as_user();
  EXPECT_NE(build_error().find("image config User: user \"app\": names need the container's /etc/passwd and /etc/group"),
            std::string::npos);
}

TEST_F(ProcessSpecTest, CapabilitiesAddAndDropWithOrWithoutPrefix) {
  Strings caps = caps_with({"NET_ADMIN", "cap_sys_time"}, {"NET_RAW", "CAP_MKNOD"});
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_NET_ADMIN"), caps.end());
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_SYS_TIME"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "CAP_NET_RAW"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "CAP_MKNOD"), caps.end());
  EXPECT_EQ(caps.size(), kDefaultCaps.size());
}

TEST_F(ProcessSpecTest, CapabilitiesAll) {
  EXPECT_EQ(caps_with({"ALL"}, {}), kAllCaps);
  EXPECT_EQ(caps_with({}, {"ALL"}), Strings{});
  EXPECT_EQ(caps_with({"CHOWN"}, {"all"}), Strings{"CAP_CHOWN"});
  Strings all_but_chown(kAllCaps.begin() + 1, kAllCaps.end());
  EXPECT_EQ(caps_with({"ALL"}, {"CHOWN"}), all_but_chown);
  // ALL means what berthd holds (containerd's cap.Current()).
  opts_.host.capabilities = [] { return Strings{"CAP_KILL", "CAP_BPF", "CAP_NOT_A_CAP"}; };
  EXPECT_EQ(caps_with({"ALL"}, {}), (Strings{"CAP_KILL", "CAP_BPF"}));
}

TEST_F(ProcessSpecTest, UnknownCapabilityNamesTheField) {
  auto* c = sc()->mutable_capabilities();
  c->add_add_capabilities("NET_ADMIN");
  c->add_add_capabilities("CAP_FOO");
  EXPECT_NE(build_error().find("linux.security_context.capabilities.add_capabilities[1]: unknown capability "
                               "\"CAP_FOO\""),
            std::string::npos);
  c->clear_add_capabilities();
  c->add_drop_capabilities("bogus");
  EXPECT_NE(build_error().find("drop_capabilities[0]: unknown capability \"bogus\""), std::string::npos);
  c->clear_drop_capabilities();
  c->add_add_ambient_capabilities("NOPE");
  EXPECT_NE(build_error().find("add_ambient_capabilities[0]"), std::string::npos);
}

TEST_F(ProcessSpecTest, PrivilegedGetsEverythingAndNeedsAPrivilegedPod) {
  sc()->set_privileged(true);
  EXPECT_NE(build_error().find("linux.security_context.privileged: a privileged container needs a privileged pod"),
            std::string::npos);
  pod_sc()->set_privileged(true);
  sc()->mutable_capabilities()->add_drop_capabilities("ALL");  // privileged wins, as in containerd
  sc()->set_seccomp_profile_path("runtime/default");
  host_.devices["/dev"] = {HostDevice{"/dev/null", "/null", 'c', 1, 3, 0666, 0, 0},
                           HostDevice{"/dev/sda", "/sda", 'b', 8, 0, 0660, 0, 6}};
  json s = build();
  EXPECT_EQ(s["process"]["capabilities"]["bounding"], kAllCaps);
  EXPECT_FALSE(s["linux"].contains("seccomp"));
  EXPECT_FALSE(s["linux"].contains("maskedPaths"));
  EXPECT_FALSE(s["linux"].contains("readonlyPaths"));
  EXPECT_EQ(namespace_of(s, "cgroup"), nullptr);
  EXPECT_EQ((*mount_at(s, "/sys"))["options"].back(), "rw");
  EXPECT_EQ((*mount_at(s, "/sys/fs/cgroup"))["options"].back(), "rw");
  EXPECT_EQ(s["linux"]["devices"].size(), 2u);
  EXPECT_EQ(s["linux"]["devices"][1], (json{{"path", "/dev/sda"}, {"type", "b"}, {"major", 8}, {"minor", 0},
                                            {"fileMode", 0660}, {"uid", 0}, {"gid", 6}}));
  EXPECT_EQ(s["linux"]["resources"]["devices"], json::parse(R"([{"allow":true,"access":"rwm"}])"));
}

TEST_F(ProcessSpecTest, NoNewPrivsAndReadonlyRootfs) {
  sc()->set_no_new_privs(true);
  sc()->set_readonly_rootfs(true);
  json s = build();
  EXPECT_EQ(s["process"]["noNewPrivileges"], true);
  EXPECT_EQ(s["root"]["readonly"], true);
  EXPECT_EQ((*mount_at(s, "/etc/hosts"))["options"].back(), "ro");  // the pod's files follow the root
  EXPECT_EQ((*mount_at(s, "/dev/shm"))["options"].back(), "rw");
}

TEST_F(ProcessSpecTest, OomScoreAdj) {
  auto* res = config_.mutable_linux()->mutable_resources();
  res->set_oom_score_adj(-900);
  EXPECT_EQ(build()["process"]["oomScoreAdj"], -900);
  opts_.restrict_oom_score_adj = true;  // berthd's own is -500: no lower
  EXPECT_EQ(build()["process"]["oomScoreAdj"], -500);
  res->set_oom_score_adj(1000);
  EXPECT_EQ(build()["process"]["oomScoreAdj"], 1000);
  res->set_oom_score_adj(1001);
  EXPECT_NE(build_error().find("linux.resources.oom_score_adj: 1001 is outside -1000..1000"), std::string::npos);
}

TEST_F(ProcessSpecTest, MissingPiecesAreErrors) {
  config_.mutable_metadata()->clear_name();
  EXPECT_NE(build_error().find("metadata.name: required"), std::string::npos);
  config_.mutable_metadata()->set_name("app");
  in_.rootfs = "rootfs";
  EXPECT_NE(build_error().find("rootfs: \"rootfs\" must be an absolute path"), std::string::npos);
  in_.rootfs = "/r";
  in_.id = "../x";
  EXPECT_NE(build_error().find("container id: \"../x\" is not a valid ID"), std::string::npos);
  in_.id = "c";
  sandbox_.config = nullptr;
  EXPECT_NE(build_error().find("sandbox_config: missing"), std::string::npos);
}

} // namespace
} // namespace berth::cri::test
