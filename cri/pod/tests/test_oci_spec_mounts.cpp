// Mounts, devices, masked and read-only paths of a container's config.json.
#include <sys/stat.h>

#include "cri/pod/tests/spec_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace berth::cri::test {
namespace {

using Strings = std::vector<std::string>;

class MountSpecTest : public SpecTest {
protected:
  runtime::v1::Mount* add_mount(const std::string& container, const std::string& host) {
    auto* m = config_.add_mounts();
    m->set_container_path(container);
    m->set_host_path(host);
    return m;
  }
  static Strings destinations(const json& s) {
    Strings out;
    for (const auto& m : s["mounts"]) out.push_back(m["destination"]);
    return out;
  }
};

TEST_F(MountSpecTest, DefaultMountsAndThePodsFiles) {
  json s = build();
  EXPECT_EQ(destinations(s), (Strings{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
                                      "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm"}));
  EXPECT_EQ(*mount_at(s, "/proc"), json::parse(R"({"destination":"/proc","type":"proc","source":"proc",
                                                   "options":["nosuid","noexec","nodev"]})"));
  EXPECT_EQ((*mount_at(s, "/dev"))["options"], (Strings{"nosuid", "strictatime", "mode=755", "size=65536k"}));
  EXPECT_EQ((*mount_at(s, "/dev/pts"))["options"],
            (Strings{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  EXPECT_EQ((*mount_at(s, "/sys"))["options"], (Strings{"nosuid", "noexec", "nodev", "ro"}));
  EXPECT_EQ(*mount_at(s, "/sys/fs/cgroup"), json::parse(R"({"destination":"/sys/fs/cgroup","type":"cgroup",
      "source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]})"));
  EXPECT_EQ(*mount_at(s, "/etc/resolv.conf"), (json{{"destination", "/etc/resolv.conf"}, {"type", "bind"},
                                                    {"source", sandbox_.resolv_conf_path},
                                                    {"options", {"rbind", "rprivate", "rw"}}}));
  EXPECT_EQ((*mount_at(s, "/dev/shm"))["source"], sandbox_.shm_path);
  EXPECT_EQ(mount_at(s, "/run"), nullptr);  // containerd's WithoutRunMount
  EXPECT_FALSE(s["linux"].contains("rootfsPropagation"));
  EXPECT_TRUE(host_.prepared.empty());  // the pod's own files need no preparing
}

TEST_F(MountSpecTest, NodeIpcSharesTheNodesShmAndMissingFilesAreNotMounted) {
  sandbox_.ipcns_path.clear();
  sandbox_.hostname_path.clear();
  json s = build();
  EXPECT_EQ((*mount_at(s, "/dev/shm"))["source"], "/dev/shm");
  EXPECT_EQ(mount_at(s, "/etc/hostname"), nullptr);
  EXPECT_EQ(namespace_of(s, "ipc"), nullptr);
}

TEST_F(MountSpecTest, RequestMountsReplaceDefaultsAndPodFilesAndAreSortedParentsFirst) {
  add_mount("/data/cache", "/host/cache");
  add_mount("/etc/hosts", "/host/hosts")->set_readonly(true);
  add_mount("/data", "/host/data");
  add_mount("/sys", "/host/sys");
  json s = build();
  // Defaults first (as containerd, so a /sys bind covers /sys/fs/cgroup), then the
  // binds by depth, in request order within a depth, the pod's files after.
  EXPECT_EQ(destinations(s), (Strings{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup", "/data", "/sys",
                                      "/data/cache", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                                      "/dev/shm"}));
  EXPECT_EQ(*mount_at(s, "/etc/hosts"), (json{{"destination", "/etc/hosts"}, {"type", "bind"},
                                              {"source", "/host/hosts"}, {"options", {"rbind", "rprivate", "ro"}}}));
  EXPECT_EQ(host_.prepared, (Strings{"/host/cache", "/host/hosts", "/host/data", "/host/sys"}));
}

TEST_F(MountSpecTest, ADevMountReplacesEverythingUnderDev) {
  add_mount("/dev", "/host/dev");
  json s = build();
  EXPECT_EQ(destinations(s), (Strings{"/proc", "/sys", "/sys/fs/cgroup", "/dev", "/etc/hostname", "/etc/hosts",
                                      "/etc/resolv.conf", "/dev/shm"}));
}

TEST_F(MountSpecTest, PropagationAndRootfsPropagation) {
  host_.propagation = {{"/mnt/shared", "shared"}, {"/mnt/slave", "slave"}};
  add_mount("/a", "/mnt/slave")->set_propagation(runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  json s = build();
  EXPECT_EQ((*mount_at(s, "/a"))["options"], (Strings{"rbind", "rslave", "rw"}));
  EXPECT_EQ(s["linux"]["rootfsPropagation"], "rslave");
  add_mount("/b", "/mnt/shared")->set_propagation(runtime::v1::PROPAGATION_BIDIRECTIONAL);
  add_mount("/c", "/mnt/shared")->set_propagation(runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  s = build();
  EXPECT_EQ((*mount_at(s, "/b"))["options"], (Strings{"rbind", "rshared", "rw"}));
  EXPECT_EQ((*mount_at(s, "/c"))["options"], (Strings{"rbind", "rslave", "rw"}));
  EXPECT_EQ(s["linux"]["rootfsPropagation"], "rshared");  // the strongest wins, in any order
}

TEST_F(MountSpecTest, PropagationNeedsTheHostMountToPropagate) {
  add_mount("/a", "/mnt/private")->set_propagation(runtime::v1::PROPAGATION_BIDIRECTIONAL);
  EXPECT_NE(build_error().find("mounts[0].propagation: BIDIRECTIONAL needs \"/mnt/private\" on a shared mount, "
                               "but its mount is private"),
            std::string::npos);
  host_.propagation["/mnt/private"] = "slave";
  EXPECT_NE(build_error().find("but its mount is slave"), std::string::npos);
  config_.mutable_mounts(0)->set_propagation(runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  EXPECT_EQ(build_error(), "");
  config_.mutable_mounts(0)->set_propagation(static_cast<runtime::v1::MountPropagation>(7));
  EXPECT_NE(build_error().find("mounts[0].propagation: unknown propagation 7"), std::string::npos);
}

TEST_F(MountSpecTest, RecursiveReadOnlyIsRro) {
  auto* m = add_mount("/ro", "/host/ro");
  m->set_readonly(true);
  m->set_recursive_read_only(true);
  EXPECT_EQ((*mount_at(build(), "/ro"))["options"], (Strings{"rbind", "rprivate", "rro"}));
  m->set_readonly(false);
  EXPECT_NE(build_error().find("mounts[0].recursive_read_only: needs readonly to be set too"), std::string::npos);
  m->set_readonly(true);
  host_.propagation["/host/ro"] = "shared";
  m->set_propagation(runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  EXPECT_NE(build_error().find("mounts[0].recursive_read_only: needs PROPAGATION_PRIVATE"), std::string::npos);
}

TEST_F(MountSpecTest, HostileMountsNameTheField) {
  auto* m = add_mount("relative", "/h");
  EXPECT_NE(build_error().find("mounts[0].container_path: \"relative\" must be an absolute path"), std::string::npos);
  m->set_container_path("/c");
  m->set_host_path(std::string("/h\0x", 4));
  EXPECT_NE(build_error().find("mounts[0].host_path: must not contain a NUL byte"), std::string::npos);
  m->set_host_path("/h");
  m->set_container_path("/../..");
  EXPECT_NE(build_error().find("mounts[0].container_path: cannot mount over the root"), std::string::npos);
  m->set_container_path("/c");
  auto* id = m->add_uidmappings();
  id->set_length(1);
  EXPECT_NE(build_error().find("mounts[0].uidMappings: idmapped mounts are not supported"), std::string::npos);
  m->clear_uidmappings();
  m->mutable_image()->set_image("busybox");
  EXPECT_NE(build_error().find("mounts[0].image: image volumes are not supported"), std::string::npos);
  m->clear_image();
  opts_.max_mounts = 1;
  add_mount("/d", "/h");
  EXPECT_NE(build_error().find("mounts: 2 mounts, at most 1 are accepted"), std::string::npos);
}

TEST_F(MountSpecTest, LiveHostCreatesAMissingSourceAndResolvesSymlinks) {
  test_support::TempDir dir("berth-spec");
  ASSERT_EQ(::mkdir(dir.file("real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(dir.file("real").c_str(), dir.file("link").c_str()), 0);
  HostAccess live = live_host_access();
  opts_.host.prepare_bind_source = live.prepare_bind_source;
  add_mount("/link", dir.file("link"));
  add_mount("/new", dir.file("new/sub"));
  json s = build();
  EXPECT_EQ((*mount_at(s, "/link"))["source"], dir.file("real"));
  EXPECT_EQ((*mount_at(s, "/new"))["source"], dir.file("new/sub"));
  struct stat st;
  ASSERT_EQ(::stat(dir.file("new/sub").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(MountSpecTest, LiveHostKnowsTheRootsPropagation) {
  std::string p = live_host_access().mount_propagation("/");
  EXPECT_TRUE(p == "shared" || p == "slave" || p == "private") << p;
}

TEST_F(MountSpecTest, MaskedAndReadonlyPaths) {
  json s = build();
  EXPECT_EQ(s["linux"]["maskedPaths"],
            (Strings{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                     "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                     "/sys/devices/virtual/powercap", "/proc/scsi"}));
  EXPECT_EQ(s["linux"]["readonlyPaths"],
            (Strings{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}));
  sc()->add_masked_paths("/bin/ls");  // critest's MaskedPaths
  sc()->add_readonly_paths("/tmp/");
  s = build();
  EXPECT_EQ(s["linux"]["maskedPaths"], Strings{"/bin/ls"});
  EXPECT_EQ(s["linux"]["readonlyPaths"], Strings{"/tmp"});
  sc()->add_masked_paths("proc");
  EXPECT_NE(build_error().find("linux.security_context.masked_paths[1]: \"proc\" must be an absolute path"),
            std::string::npos);
}

TEST_F(MountSpecTest, Devices) {
  host_.devices["/dev/fuse"] = {HostDevice{"/dev/fuse", "", 'c', 10, 229, 0666, 0, 0}};
  host_.devices["/dev/dri"] = {HostDevice{"/dev/dri/card0", "/card0", 'c', 226, 0, 0660, 0, 44},
                               HostDevice{"/dev/dri/by/renderD128", "/by/renderD128", 'c', 226, 128, 0660, 0, 105}};
  auto add = [&](const char* host, const char* container, const char* perms) {
    auto* d = config_.add_devices();
    d->set_host_path(host);
    d->set_container_path(container);
    d->set_permissions(perms);
  };
  add("/dev/fuse", "/dev/fuse0", "rw");
  add("/dev/dri", "/dev/gpu", "rwm");
  add("/dev/fuse", "", "r");
  json linux = build()["linux"];
  EXPECT_EQ(linux["devices"], json::parse(R"([
    {"path":"/dev/fuse0","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0},
    {"path":"/dev/gpu/card0","type":"c","major":226,"minor":0,"fileMode":432,"uid":0,"gid":44},
    {"path":"/dev/gpu/by/renderD128","type":"c","major":226,"minor":128,"fileMode":432,"uid":0,"gid":105},
    {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0}])"));
  EXPECT_EQ(linux["resources"]["devices"], json::parse(R"([
    {"allow":false,"access":"rwm"},
    {"allow":true,"type":"c","major":10,"minor":229,"access":"rw"},
    {"allow":true,"type":"c","major":226,"minor":0,"access":"rwm"},
    {"allow":true,"type":"c","major":226,"minor":128,"access":"rwm"},
    {"allow":true,"type":"c","major":10,"minor":229,"access":"r"}])"));
}

TEST_F(MountSpecTest, DeviceErrorsNameTheField) {
  auto* d = config_.add_devices();
  d->set_host_path("/dev/nope");
  d->set_permissions("rwx");
  EXPECT_NE(build_error().find("devices[0].permissions: \"rwx\" must be a combination of r, w and m"),
            std::string::npos);
  d->set_permissions("");
  EXPECT_NE(build_error().find("devices[0].permissions"), std::string::npos);
  d->set_permissions("rw");
  std::string err;
  try {
    build();
  } catch (const Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("devices[0].host_path: stat /dev/nope"), std::string::npos) << err;
  d->set_host_path("dev/null");
  EXPECT_NE(build_error().find("devices[0].host_path: \"dev/null\" must be an absolute path"), std::string::npos);
  opts_.max_devices = 0;
  EXPECT_NE(build_error().find("devices: 1 devices, at most 0 are accepted"), std::string::npos);
}

TEST_F(MountSpecTest, LiveHostFindsDevNull) {
  auto found = live_host_access().devices_at("/dev/null");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].path, "/dev/null");
  EXPECT_EQ(found[0].type, 'c');
  EXPECT_EQ(found[0].major, 1);
  EXPECT_EQ(found[0].minor, 3);
  EXPECT_THROW(live_host_access().devices_at("/etc/hostname"), Error);
  // A directory walk finds /dev/null again, relative to the directory.
  auto all = live_host_access().devices_at("/dev");
  EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](const HostDevice& d) { return d.relative == "/null"; }));
  EXPECT_FALSE(std::any_of(all.begin(), all.end(), [](const HostDevice& d) { return d.relative.rfind("/pts/", 0) == 0; }));
}

} // namespace
} // namespace berth::cri::test
