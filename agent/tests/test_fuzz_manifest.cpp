// The static pod manifest parser gets random and mutated YAML for a bounded time on
// every run (tests/lib/fuzz.hpp): it may refuse an input with berth::Error, nothing else.
#include <gtest/gtest.h>

#include "agent/lib/manifest.hpp"
#include "tests/lib/fuzz.hpp"

namespace berth::agent {
namespace {

const std::vector<std::string> kSeeds = {
    R"(apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  uid: 0b1c2d3e
  labels: {app: web, tier: "1"}
  annotations: {note: hello}
spec:
  restartPolicy: Always
  hostNetwork: false
  securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, sysctls: [{name: net.ipv4.ip_forward, value: "1"}]}
  initContainers:
  - name: init
    image: busybox:latest
    command: [sh, -c, "echo hi"]
  containers:
  - name: app
    image: registry.local:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    args: ["--port", "8080"]
    env: [{name: A, value: b}]
    ports: [{containerPort: 8080, hostPort: 18080, protocol: TCP}]
    resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi}}
    volumeMounts: [{name: data, mountPath: /data, subPath: a/b, readOnly: true}]
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 5}
    readinessProbe: {exec: {command: [cat, /tmp/ready]}}
    securityContext: {capabilities: {add: [NET_ADMIN], drop: [ALL]}, readOnlyRootFilesystem: true}
  volumes:
  - name: data
    emptyDir: {medium: Memory, sizeLimit: 1Gi}
  - name: host
    hostPath: {path: /var/log, type: Directory}
)",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n",
    "a: &x [1, 2]\nb: [*x, *x]\nc: {<<: {k: v}}\n",
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"j\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}",
};

const std::vector<std::string> kTokens = {
    "{", "}", "[", "]", ":", "- ", "\n", "  ", "&a ", "*a", "<<: ", "!!str ", "!!binary ", "'", "\"", "---\n",
    "...\n", "|\n", ">-\n", "? ", "#", "%YAML 1.2\n", "name: ", "uid: ", "image: ", "containers: ", "volumes: ",
    "subPath: ../../", "hostPath: {path: /}", "1e999", "-0x1", "~", "null", "true", "\xff\xfe", "\t",
};

TEST(ManifestFuzz, RandomAndMutatedManifestsAreParsedOrRefusedWithAnError) {
  size_t runs = fuzz::run(kSeeds, kTokens, [](const std::string& text) {
    manifest_from_text("/etc/kubernetes/manifests/fuzz.yaml", text, "node-1");
  });
  EXPECT_GT(runs, 100u);
}

// Found by the fuzzer: yaml-cpp's LoadAll loops forever, allocating, on a stray flow
// separator after a document; one byte of manifest took berthlet (and its node's
// memory) down.
TEST(ManifestFuzz, StrayFlowSeparatorIsAnErrorNotAnEndlessParse) {
  for (const char* text : {",", "{a: b},", "[a],", "{\"kind\":\"Pod\"},\"spec\":{}"}) {
    try {
      yaml_to_json(text);
      ADD_FAILURE() << text << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("YAML documents"), std::string::npos) << e.what();
    }
  }
}

TEST(ManifestFuzz, InvalidUtf8IsRefusedNamingTheByte) {
  try {
    manifest_from_text("/m/pod.yaml", "kind: Pod\nmetadata: {name: \"a\x9a\"}\n", "node");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte 29)"), std::string::npos) << e.what();
  }
}

} // namespace
} // namespace berth::agent
