#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>

#include <gtest/gtest.h>

#include "agent/lib/manifest.hpp"
#include "agent/lib/quantity.hpp"
#include "common/error.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth::agent;

namespace {

const char* kGood = R"(
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  initContainers:
  - name: setup
    image: busybox:1.36
    command: ["sh", "-c", "echo hi"]
  containers:
  - name: main
    image: busybox
    args: ["httpd", "-f"]
    env:
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - {name: PLAIN, value: "42"}
    ports: [{name: http, containerPort: 80, hostPort: 8080}]
    resources:
      limits: {cpu: 500m, memory: 64Mi}
    readinessProbe:
      httpGet: {path: healthz, port: http}
      periodSeconds: 2
    volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
  volumes:
  - name: data
    emptyDir: {medium: Memory, sizeLimit: 1Mi}
)";

std::string error_of(const std::string& text) {
  try {
    manifest_from_text("/m/pod.yaml", text, "Node1");
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST(Quantity, CpuAndMemory) {
  EXPECT_EQ(parse_quantity_milli("500m"), 500);
  EXPECT_EQ(parse_quantity_milli("1"), 1000);
  EXPECT_EQ(parse_quantity_milli("0.25"), 250);
  EXPECT_EQ(parse_quantity_milli("2.5"), 2500);
  EXPECT_EQ(parse_quantity("64Mi"), 64 << 20);
  EXPECT_EQ(parse_quantity("1G"), 1000000000);
  EXPECT_EQ(parse_quantity("1e3"), 1000);
  EXPECT_EQ(parse_quantity("1.5Ki"), 1536);
  EXPECT_THROW(parse_quantity("12XB"), berth::Error);
  EXPECT_THROW(parse_quantity("Mi"), berth::Error);
}

TEST(Manifest, IdentityAndDefaults) {
  auto m = manifest_from_text("/m/pod.yaml", kGood, "Node1");
  EXPECT_EQ(m.pod.name, "web-node1");
  EXPECT_EQ(m.pod.namespace_, "default");
  EXPECT_EQ(m.full_name, "default/web-node1");
  EXPECT_EQ(m.pod.uid.size(), 32u);
  EXPECT_EQ(m.pod.annotations.at("kubernetes.io/config.source"), "file");
  ASSERT_EQ(m.pod.spec.init_containers.size(), 1u);
  ASSERT_EQ(m.pod.spec.containers.size(), 1u);
  auto& c = m.pod.spec.containers[0];
  EXPECT_EQ(c.image_pull_policy, "Always"); // untagged
  EXPECT_EQ(m.pod.spec.init_containers[0].image_pull_policy, "IfNotPresent");
  EXPECT_EQ(c.env[0].field_path, "metadata.name");
  EXPECT_EQ(c.env[1].value, "42");
  EXPECT_EQ(c.ports[0].host_port, 8080);
  EXPECT_EQ(*c.resources.cpu_limit_milli, 500);
  EXPECT_EQ(*c.resources.cpu_request_milli, 500); // defaulted from the limit
  EXPECT_EQ(*c.resources.memory_limit, 64 << 20);
  ASSERT_TRUE(c.readiness_probe);
  EXPECT_EQ(c.readiness_probe->handler.http_get.port, 80); // named port resolved
  EXPECT_EQ(c.readiness_probe->handler.http_get.path, "/healthz");
  EXPECT_EQ(c.readiness_probe->period_seconds, 2);
  EXPECT_EQ(c.readiness_probe->failure_threshold, 3);
  EXPECT_EQ(m.pod.spec.volumes[0].empty_dir_medium, "Memory");
  EXPECT_EQ(*m.pod.spec.volumes[0].size_limit, 1 << 20);
  EXPECT_EQ(qos_class(m.pod.spec), "Burstable"); // the init container has no limits
}

TEST(Manifest, UidFollowsContentNodeAndPathButNotFormatting) {
  auto a = manifest_from_text("/m/pod.yaml", kGood, "node1");
  auto same = manifest_from_text("/m/pod.yaml", std::string("# a comment\n") + kGood, "node1");
  EXPECT_EQ(a.pod.uid, same.pod.uid);
  std::string edited = kGood;
  edited.replace(edited.find("echo hi"), 7, "echo ho");
  EXPECT_NE(a.pod.uid, manifest_from_text("/m/pod.yaml", edited, "node1").pod.uid);
  EXPECT_NE(a.pod.uid, manifest_from_text("/m/other.yaml", kGood, "node1").pod.uid);
  EXPECT_NE(a.pod.uid, manifest_from_text("/m/pod.yaml", kGood, "node2").pod.uid);
}

TEST(Manifest, JsonIsAccepted) {
  auto m = manifest_from_text("/m/p.json",
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},
          "spec":{"containers":[{"name":"c","image":"busybox:1"}],"hostNetwork":true}})", "n");
  EXPECT_EQ(m.pod.namespace_, "kube-system");
  EXPECT_TRUE(m.pod.spec.host_network);
}

TEST(Manifest, ErrorsNameTheFileAndTheField) {
  EXPECT_NE(error_of("kind: Pod\nmetadata: {name: x\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of("kind: Deployment\nmetadata: {name: x}\n").find("kind: \"Deployment\" is not supported"), std::string::npos);
  auto missing_image = error_of("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c}]}\n");
  EXPECT_NE(missing_image.find("/m/pod.yaml: spec.containers[0].image: required"), std::string::npos) << missing_image;
  auto bad_type = error_of("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, command: 5}]}\n");
  EXPECT_NE(bad_type.find("spec.containers[0].command: expected an array"), std::string::npos) << bad_type;
  auto volume = error_of("kind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c, image: i}]\n"
                         "  volumes: [{name: s, secret: {secretName: x}}]\n");
  EXPECT_NE(volume.find("spec.volumes[0].secret: volume type not supported"), std::string::npos) << volume;
  auto mount = error_of("kind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c, image: i, "
                        "volumeMounts: [{name: nope, mountPath: /x}]}]\n");
  EXPECT_NE(mount.find("spec.containers[0].volumeMounts[0].name: no volume named \"nope\""), std::string::npos) << mount;
  auto two = error_of("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}]}\n---\nkind: Pod\n");
  EXPECT_NE(two.find("2 documents"), std::string::npos);
  auto dup = error_of("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}, {name: c, image: j}]}\n");
  EXPECT_NE(dup.find("duplicate container name"), std::string::npos);
  auto cpu = error_of("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, resources: {limits: {cpu: lots}}}]}\n");
  EXPECT_NE(cpu.find("spec.containers[0].resources.limits.cpu"), std::string::npos) << cpu;
  EXPECT_NE(error_of("kind: Pod\nmetadata: {name: x}\nspec: {restartPolicy: Sometimes, containers: [{name: c, image: i}]}\n")
                .find("spec.restartPolicy: must be"), std::string::npos);
  EXPECT_NE(error_of("kind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n")
                .find("metadata.name"), std::string::npos);
  EXPECT_NE(error_of("").find("empty manifest"), std::string::npos);
}

TEST(Manifest, YamlScalarsFollowTheCoreSchema) {
  auto j = yaml_to_json("a: 1\nb: '1'\nc: true\nd: 1.5\ne: 64Mi\nf: ~\ng: \"true\"\n");
  EXPECT_TRUE(j["a"].is_number_integer());
  EXPECT_TRUE(j["b"].is_string());
  EXPECT_TRUE(j["c"].is_boolean());
  EXPECT_TRUE(j["d"].is_number_float());
  EXPECT_EQ(j["e"], "64Mi");
  EXPECT_TRUE(j["f"].is_null());
  EXPECT_TRUE(j["g"].is_string());
}

TEST(Manifest, QosClasses) {
  auto guaranteed = manifest_from_text("/p", "kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, "
                                             "resources: {limits: {cpu: 1, memory: 1Gi}}}]}\n", "n");
  EXPECT_EQ(qos_class(guaranteed.pod.spec), "Guaranteed");
  auto best = manifest_from_text("/p", "kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}]}\n", "n");
  EXPECT_EQ(qos_class(best.pod.spec), "BestEffort");
}

#include "agent/lib/hash.hpp"

TEST(Hash, Md5MatchesTheReference) {
  EXPECT_EQ(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
}

// ---- hostile manifests: names that become paths, documents that expand -------------------

namespace {

std::string pod_with(const std::string& metadata_extra, const std::string& container_extra = "",
                     const std::string& spec_extra = "") {
  return "kind: Pod\nmetadata: {name: x" + metadata_extra + "}\nspec:\n  containers: [{name: c, image: i" +
         container_extra + "}]\n" + spec_extra;
}

} // namespace

TEST(ManifestPaths, UidMustNotBeAPath) {
  // metadata.uid names <rootDir>/pods/<uid>, the log directory and the pod cgroup.
  for (const char* uid : {"../../../victim", "..", ".", "a/b", "/abs", "x\\u0000y", "with space", "-lead", "trail-",
                          "ü", ""}) {
    if (!*uid) continue;
    auto err = error_of(pod_with(std::string(", uid: \"") + uid + "\""));
    EXPECT_NE(err.find("/m/pod.yaml: metadata.uid: "), std::string::npos) << uid << ": " << err;
    EXPECT_NE(err.find("is not a valid UID"), std::string::npos) << uid << ": " << err;
  }
  EXPECT_NE(error_of(pod_with(", uid: \"" + std::string(129, 'a') + "\"")).find("metadata.uid"), std::string::npos);
  for (const char* uid : {"0b7d6f5e-4c3b-4a29-8e1f-2d3c4b5a6978", "d41d8cd98f00b204e9800998ecf8427e", "My_Pod-1"})
    EXPECT_EQ(manifest_from_text("/m/p.yaml", pod_with(std::string(", uid: \"") + uid + "\""), "n").pod.uid, uid);
}

TEST(ManifestPaths, SubPathHostPathAndProfilesStayWhereTheyBelong) {
  for (const char* sub : {"..", "../x", "a/../../x", "a/..", "/etc", "a/b/../../.."}) {
    auto err = error_of(pod_with("", std::string(", volumeMounts: [{name: v, mountPath: /v, subPath: \"") + sub + "\"}]",
                                 "  volumes: [{name: v, emptyDir: {}}]\n"));
    EXPECT_NE(err.find("spec.containers[0].volumeMounts[0].subPath: must"), std::string::npos) << sub << ": " << err;
  }
  auto ok = manifest_from_text("/m/p.yaml", pod_with("", ", volumeMounts: [{name: v, mountPath: /v, subPath: a..b/./c}]",
                                                     "  volumes: [{name: v, emptyDir: {}}]\n"), "n");
  EXPECT_EQ(ok.pod.spec.containers[0].volume_mounts[0].sub_path, "a..b/./c");
  auto host = error_of(pod_with("", "", "  volumes: [{name: v, hostPath: {path: /srv/../etc}}]\n"));
  EXPECT_NE(host.find("spec.volumes[0].hostPath.path: must not contain '..'"), std::string::npos) << host;
  auto rel = error_of(pod_with("", "", "  volumes: [{name: v, hostPath: {path: srv}}]\n"));
  EXPECT_NE(rel.find("spec.volumes[0].hostPath.path: must be an absolute path"), std::string::npos) << rel;
  auto profile = error_of(pod_with("", ", securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../../etc/x}}"));
  EXPECT_NE(profile.find("seccompProfile.localhostProfile: must not contain '..'"), std::string::npos) << profile;
  auto abs = error_of(pod_with("", "", "  securityContext: {seccompProfile: {type: Localhost, localhostProfile: /etc/x}}\n"));
  EXPECT_NE(abs.find("spec.securityContext.seccompProfile.localhostProfile: must be a relative path"), std::string::npos)
      << abs;
  auto sysctl = error_of(pod_with("", "", "  securityContext: {sysctls: [{name: ../../../proc/x, value: '1'}]}\n"));
  EXPECT_NE(sysctl.find("spec.securityContext.sysctls[0].name: \"../../../proc/x\" is not a valid sysctl name"),
            std::string::npos) << sysctl;
  EXPECT_NO_THROW(manifest_from_text(
      "/m/p.yaml", pod_with("", "", "  securityContext: {sysctls: [{name: net.ipv4.ip_forward, value: '1'}, "
                                    "{name: kernel/shm_rmid_forced, value: '1'}]}\n"), "n"));
}

TEST(ManifestBounds, AliasBombIsRefusedBeforeItExpands) {
  // ~350 bytes that stand for 9^9 (387 million) strings when every alias is expanded.
  std::string bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  const char* names = "abcdefghi";
  for (int i = 1; i < 9; i++) {
    bomb += fmt::format("{}: &{} [", names[i], names[i]);
    for (int j = 0; j < 9; j++) bomb += fmt::format("{}*{}", j ? "," : "", names[i - 1]);
    bomb += "]\n";
  }
  bomb += "kind: Pod\n";
  auto start = std::chrono::steady_clock::now();
  auto err = error_of(bomb);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(err.find("/m/pod.yaml: line "), std::string::npos) << err;
  EXPECT_NE(err.find("expands to more than 200000 nodes (YAML aliases?)"), std::string::npos) << err;
  EXPECT_LT(took, std::chrono::seconds(2));
  // a long string repeated through aliases counts its bytes every time
  std::string big = "s: &s \"" + std::string(64 * 1024, 'x') + "\"\nl: [" ;
  for (int i = 0; i < 100; i++) big += (i ? ",*s" : "*s");
  big += "]\n";
  auto bytes = error_of(big);
  EXPECT_NE(bytes.find("bytes of strings (YAML aliases?)"), std::string::npos) << bytes;
  // a few aliases of a small anchor are fine
  auto j = yaml_to_json("x: &x {a: 1}\ny: *x\nz: [*x, *x]\n");
  EXPECT_EQ(j["z"][1]["a"], 1);
}

TEST(ManifestBounds, NestingIsBounded) {
  auto deep = error_of(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_FALSE(deep.empty());
  std::string sixty_five = "kind: Pod\nx: " + std::string(65, '[') + std::string(65, ']') + "\n";
  auto err = error_of(sixty_five);
  EXPECT_NE(err.find("nested deeper than 64 levels"), std::string::npos) << err;
  std::string sixty = "x: " + std::string(60, '[') + std::string(60, ']') + "\n";
  EXPECT_NO_THROW(yaml_to_json(sixty));
}

TEST(ManifestBounds, FilesOverOneMebibyteAndNonRegularFilesAreRefused) {
  berth::test_support::TempDir d("berthlet-test");
  std::string big = "kind: Pod\n# " + std::string(1 << 20, 'x') + "\n";
  d.put("big.yaml", big);
  try {
    load_manifest(d / "big.yaml", "n");
    ADD_FAILURE() << "a file over 1 MiB was read";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("big.yaml: 1048589 bytes: files larger than 1048576 bytes (1 MiB) are refused"),
              std::string::npos) << e.what();
  }
  // A FIFO (swapped in after the directory scan) must not block the event loop.
  ASSERT_EQ(::mkfifo((d / "fifo.yaml").c_str(), 0600), 0);
  try {
    load_manifest(d / "fifo.yaml", "n");
    ADD_FAILURE() << "a FIFO was read";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fifo.yaml: not a regular file"), std::string::npos) << e.what();
  }
}
