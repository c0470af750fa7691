#include <gtest/gtest.h>

#include "agent/lib/manifest.hpp"
#include "agent/lib/quantity.hpp"
#include "common/error.hpp"

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
