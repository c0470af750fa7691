// The kubernetes sink's pure parts: kubeconfig parsing (inline -data, files, tokens, bad
// input), its statusSinks keys and errors, the objects it sends (the mirror pod of a
// static pod, the Lease, patch bodies) and the bounded JSON reader. The protocol against
// a server is tested by tests/agent/test_status_sink_kube*.py.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/lib/config.hpp"
#include "agent/lib/pod.hpp"
#include "agent/lib/sinks/kube_client.hpp"
#include "agent/lib/sinks/kube_objects.hpp"
#include "agent/lib/sinks/kubeconfig.hpp"
#include "common/base64.hpp"
#include "common/error.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string config_error(const std::string& sinks) {
  return error_of([&] {
    config_from_yaml("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" + sinks, "cfg.yaml");
  });
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/kube-sink-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

const char* kTwoClusters = R"(apiVersion: v1
kind: Config
current-context: berth
clusters:
- name: other
  cluster: {server: "https://10.0.0.9:6443"}
- name: main
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: pki/ca.crt
users:
- name: node
  user:
    client-certificate: /etc/pki/node.crt
    client-key: pki/node.key
contexts:
- name: berth
  context: {cluster: main, user: node}
)";

} // namespace

TEST(Kubeconfig, CurrentContextsClusterAndUserWithRelativePathsResolved) {
  auto c = parse_kubeconfig(kTwoClusters, "/etc/berth");
  EXPECT_EQ(c.servers, std::vector<std::string>{"https://127.0.0.1:6443"});
  EXPECT_EQ(c.ca_file, "/etc/berth/pki/ca.crt");
  EXPECT_EQ(c.cert_file, "/etc/pki/node.crt");
  EXPECT_EQ(c.key_file, "/etc/berth/pki/node.key");
  EXPECT_TRUE(c.token.empty());
  EXPECT_FALSE(c.insecure_skip_tls_verify);
}

TEST(Kubeconfig, InlineDataAndTokens) {
  auto ca = berth::base64_encode("-----BEGIN CERTIFICATE-----\nCA\n"), cert = berth::base64_encode("CERT"),
       key = berth::base64_encode("KEY");
  auto c = parse_kubeconfig(fmt::format(R"({{"current-context": "x",
    "clusters": [{{"name": "c", "cluster": {{"server": "https://a:1", "certificate-authority-data": "{}"}}}}],
    "users": [{{"name": "u", "user": {{"client-certificate-data": "{}", "client-key-data": "{}"}}}}],
    "contexts": [{{"name": "x", "context": {{"cluster": "c", "user": "u"}}}}]}})",
                                        ca, cert, key),
                            "/");
  EXPECT_EQ(c.ca_data, "-----BEGIN CERTIFICATE-----\nCA\n");
  EXPECT_EQ(c.cert_data, "CERT");
  EXPECT_EQ(c.key_data, "KEY");
  auto t = parse_kubeconfig("clusters: [{name: c, cluster: {server: 'https://a:1', insecure-skip-tls-verify: true}}]\n"
                            "users: [{name: u, user: {token: abc}}]\n",
                            "/");
  EXPECT_EQ(t.token, "abc");
  EXPECT_TRUE(t.insecure_skip_tls_verify);
  auto f = parse_kubeconfig("clusters: [{name: c, cluster: {server: 'https://a:1'}}]\n"
                            "users: [{name: u, user: {tokenFile: tok}}]\n",
                            "/etc/k");
  EXPECT_EQ(f.token_file, "/etc/k/tok");
}

TEST(Kubeconfig, BadInputGetsOneClearError) {
  EXPECT_EQ(error_of([] { parse_kubeconfig("[1, 2]", "/"); }),
            "not a kubeconfig (expected a mapping with clusters, users and contexts)");
  EXPECT_EQ(error_of([] { parse_kubeconfig("current-context: nope\ncontexts: []\n", "/"); }),
            "contexts: no entry named \"nope\"");
  EXPECT_EQ(error_of([] {
              parse_kubeconfig("clusters: [{name: c, cluster: {server: 'ftp://a'}}]\n", "/");
            }),
            "clusters[c].cluster.server: must start with https:// (or http://)");
  EXPECT_EQ(error_of([] {
              parse_kubeconfig("clusters: [{name: c, cluster: {server: 'https://a', certificate-authority-data: '@@'}}]\n",
                               "/");
            }),
            "clusters[c].cluster.certificate-authority-data: not valid base64");
  EXPECT_EQ(error_of([] {
              parse_kubeconfig("clusters: [{name: c, cluster: {server: 'https://a'}}]\n"
                               "users: [{name: u, user: {client-key: k}}]\n",
                               "/");
            }),
            "users[u].user: client-certificate and client-key go together");
  EXPECT_EQ(error_of([] {
              parse_kubeconfig("clusters: [{name: c, cluster: {server: 'https://a'}}]\n"
                               "users: [{name: u, user: {exec: {command: x}}}]\n",
                               "/");
            }),
            "users[u].user.exec: not supported (use a client certificate or a token)");
  EXPECT_NE(error_of([] { parse_kubeconfig("a: [", "/"); }).find("not valid YAML"), std::string::npos);
  TempDir d;
  auto big = d.write("big", std::string(kMaxKubeconfigBytes + 1, '#'));
  EXPECT_NE(error_of([&] { load_kubeconfig(big); }).find(big), std::string::npos);
}

TEST(KubeSinkConfig, KeysRoundTripAndKubeconfigIsCheckedAtStart) {
  TempDir d;
  auto kc = d.write("kc", kTwoClusters);
  auto c = config_from_yaml(fmt::format(R"(apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
statusSinks:
- name: api
  type: kubernetes
  kubeconfig: {}
  servers: ["https://127.0.0.2:6443"]
  bearerTokenFile: /etc/berth/token
  timeout: 2s
  nodeLeaseDuration: 20s
)",
                                        kc),
                            "cfg.yaml");
  ASSERT_EQ(c.status_sinks.size(), 1u);
  auto& s = c.status_sinks[0];
  EXPECT_EQ(s.node_lease_duration, 20s);
  EXPECT_EQ(s.timeout, 2s);
  auto creds = kube_credentials(s);
  // The kubeconfig's server first, the extra server after it; the token file overrides.
  EXPECT_EQ(creds.servers, (std::vector<std::string>{"https://127.0.0.1:6443", "https://127.0.0.2:6443"}));
  EXPECT_EQ(creds.token_file, "/etc/berth/token");
  EXPECT_EQ(creds.cert_file, "/etc/pki/node.crt");
  finalize_config(c);
  EXPECT_EQ(config_from_yaml(config_to_yaml(c), "printed").status_sinks, c.status_sinks);

  EXPECT_EQ(config_error("statusSinks:\n- name: a\n  type: kubernetes\n"),
            "cfg.yaml:4: statusSinks[0].servers: a kubernetes sink needs kubeconfig or servers");
  EXPECT_EQ(config_error("statusSinks:\n- name: a\n  type: kubernetes\n  servers: [https://a/]\n  method: PUT\n"),
            "cfg.yaml:7: statusSinks[0].method: unknown key for a kubernetes sink (a typo?)");
  EXPECT_EQ(config_error("statusSinks:\n- name: a\n  type: kubernetes\n  servers: [https://a/]\n  nodeLeaseDuration: 2s\n"),
            "cfg.yaml:7: statusSinks[0].nodeLeaseDuration: must be at least 4s (renewed every quarter of it)");
  EXPECT_EQ(config_error("statusSinks:\n- name: a\n  type: kubernetes\n  servers: [https://a/]\n  clientCertFile: /c\n"),
            "cfg.yaml:4: statusSinks[0].clientKeyFile: clientCertFile and clientKeyFile go together");
  auto bad = d.write("bad", "clusters: [{name: c, cluster: {}}]\n");
  EXPECT_EQ(config_error("statusSinks:\n- name: a\n  type: kubernetes\n  kubeconfig: " + bad + "\n"),
            "cfg.yaml:6: statusSinks[0].kubeconfig: " + bad + ": clusters[c].cluster.server: required");
  EXPECT_NE(config_error("statusSinks:\n- name: a\n  type: kubernetes\n  kubeconfig: /nonexistent/kc\n")
                .find("cfg.yaml:6: statusSinks[0].kubeconfig: /nonexistent/kc"),
            std::string::npos);
}

TEST(KubeObjects, MirrorPodOfAStaticPod) {
  nlohmann::json pod = {{"apiVersion", "v1"},
                        {"kind", "Pod"},
                        {"metadata",
                         {{"name", "web-node1"},
                          {"namespace", "default"},
                          {"uid", "abc123"},
                          {"creationTimestamp", "2026-01-01T00:00:00Z"},
                          {"labels", {{"app", "web"}}},
                          {"annotations", {{"kubernetes.io/config.hash", "abc123"}, {"note", "x"}}}}},
                        {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}},
                        {"status", {{"phase", "Running"}}}};
  auto m = mirror_pod(pod, "node1", "node-uid-1");
  EXPECT_EQ(m["metadata"]["name"], "web-node1");
  EXPECT_EQ(m["metadata"]["labels"], pod["metadata"]["labels"]);
  auto& ann = m["metadata"]["annotations"];
  EXPECT_EQ(ann["kubernetes.io/config.mirror"], "abc123");
  EXPECT_EQ(ann["kubernetes.io/config.source"], "file");
  EXPECT_EQ(ann["note"], "x");
  EXPECT_EQ(m["metadata"]["ownerReferences"],
            nlohmann::json::parse(R"([{"apiVersion":"v1","kind":"Node","name":"node1","uid":"node-uid-1","controller":true}])"));
  EXPECT_FALSE(m["metadata"].contains("uid")) << "the API server assigns the mirror pod's own UID";
  EXPECT_FALSE(m.contains("status")) << "status goes through the status subresource";
  EXPECT_EQ(m["spec"]["nodeName"], "node1");

  // The API server's copy: current while its hash matches and it is not being deleted.
  auto api = m;
  api["metadata"]["uid"] = "mirror-uid";
  EXPECT_TRUE(is_mirror_pod(api));
  EXPECT_TRUE(is_current_mirror_of(api, pod));
  auto edited = pod;
  edited["metadata"]["annotations"]["kubernetes.io/config.hash"] = "def456";
  EXPECT_FALSE(is_current_mirror_of(api, edited));
  api["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z";
  EXPECT_FALSE(is_current_mirror_of(api, pod));
  EXPECT_FALSE(is_mirror_pod(pod));

  auto patch = pod_status_patch(pod, "mirror-uid");
  EXPECT_EQ(patch, nlohmann::json::parse(R"({"metadata":{"uid":"mirror-uid"},"status":{"phase":"Running"}})"));
  EXPECT_EQ(mirror_delete_options("u1")["preconditions"]["uid"], "u1");
  EXPECT_EQ(mirror_delete_options("u1")["gracePeriodSeconds"], 0);
}

TEST(KubeObjects, NodeRegistrationLeaseAndStatusPatch) {
  nlohmann::json node = {{"metadata", {{"name", "node1"}, {"labels", {{"kubernetes.io/os", "linux"}, {"kubernetes.io/arch", "amd64"}}}}},
                         {"status", {{"conditions", nlohmann::json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
  auto reg = node_registration(node);
  EXPECT_EQ(reg["metadata"]["labels"]["beta.kubernetes.io/os"], "linux");
  EXPECT_EQ(reg["metadata"]["labels"]["beta.kubernetes.io/arch"], "amd64");
  EXPECT_EQ(reg["status"], node["status"]);
  EXPECT_EQ(node_status_patch(node), nlohmann::json({{"status", node["status"]}}));
  auto lease = node_lease("node1", "uid-1", 40s, "2026-12-07T09:40:00.123456Z");
  EXPECT_EQ(lease["metadata"]["namespace"], "kube-node-lease");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "node1");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 40);
  EXPECT_EQ(lease["metadata"]["ownerReferences"][0]["uid"], "uid-1");
  EXPECT_FALSE(node_lease("node1", "", 40s, "t")["metadata"].contains("ownerReferences"));
  auto t = micro_time_now();
  EXPECT_EQ(t.size(), 27u) << t;
  EXPECT_EQ(t.back(), 'Z');
  EXPECT_EQ(t[19], '.');
}

TEST(KubeClient, NamesAndBoundedJson) {
  EXPECT_TRUE(valid_dns1123_subdomain("web-node1.example"));
  EXPECT_FALSE(valid_dns1123_subdomain("Web"));
  EXPECT_FALSE(valid_dns1123_subdomain("a/../b"));
  EXPECT_FALSE(valid_dns1123_subdomain("-a"));
  EXPECT_FALSE(valid_dns1123_subdomain(std::string(254, 'a')));
  EXPECT_TRUE(valid_dns1123_label("kube-system"));
  EXPECT_FALSE(valid_dns1123_label("a.b"));
  EXPECT_EQ(url_escape("a b/c?"), "a%20b%2Fc%3F");
  EXPECT_EQ(parse_bounded_json("{\"a\":[1]}")["a"][0], 1);
  EXPECT_TRUE(parse_bounded_json("").is_null());
  EXPECT_NE(error_of([] { parse_bounded_json(std::string(100, '[') + std::string(100, ']')); }).find("deeper than 64"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_bounded_json("{"); }).find("not valid JSON"), std::string::npos);
}
