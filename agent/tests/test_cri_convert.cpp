#include <gtest/gtest.h>

#include "agent/lib/cri_convert.hpp"
#include "agent/lib/manifest.hpp"

using namespace berth::agent;

namespace {
const char* kPod = R"Y(
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  hostname: www
  dnsPolicy: None
  dnsConfig: {nameservers: [10.0.0.10], searches: [example.org], options: [{name: ndots, value: "2"}]}
  securityContext: {runAsUser: 1000, sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]}
  containers:
  - name: app
    image: busybox:1
    command: ["sh", "-c", "echo $(GREETING) $(NAME) $$(kept)"]
    env:
    - {name: GREETING, value: hello}
    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    ports: [{containerPort: 80, hostPort: 8080}]
    resources: {requests: {cpu: 250m, memory: 32Mi}, limits: {cpu: 1500m, memory: 64Mi}}
    securityContext:
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      seccompProfile: {type: RuntimeDefault}
)Y";
} // namespace

TEST(CriConvert, CpuSharesQuotaAndOom) {
  Resources r;
  r.cpu_request_milli = 250;
  r.cpu_limit_milli = 1500;
  auto c = convert_cpu(r);
  EXPECT_EQ(c.shares, 256);
  EXPECT_EQ(c.quota, 150000);
  EXPECT_EQ(c.period, 100000);
  Resources tiny;
  tiny.cpu_request_milli = 1;
  tiny.cpu_limit_milli = 5;
  EXPECT_EQ(convert_cpu(tiny).shares, 2);
  EXPECT_EQ(convert_cpu(tiny).quota, 1000);
  EXPECT_EQ(convert_cpu(Resources{}).shares, 2);
  EXPECT_EQ(convert_cpu(Resources{}).quota, 0);
  Resources mem;
  mem.memory_request = 1 << 30;
  EXPECT_EQ(oom_score_adj("Burstable", mem, 4LL << 30), 750);
  EXPECT_EQ(oom_score_adj("Guaranteed", mem, 4LL << 30), -997);
  EXPECT_EQ(oom_score_adj("BestEffort", mem, 4LL << 30), 1000);
}

TEST(CriConvert, SandboxConfigAsTheKubeletBuildsIt) {
  Config cfg;
  cfg.node_name = "n1";
  cfg.cgroup_root = "/test";
  cfg.pod_logs_dir = "/logs";
  auto m = manifest_from_text("/m/web.yaml", kPod, "n1");
  auto sc = sandbox_config(cfg, m.pod, 2);
  EXPECT_EQ(sc.metadata().name(), "web-n1");
  EXPECT_EQ(sc.metadata().namespace_(), "prod");
  EXPECT_EQ(sc.metadata().uid(), m.pod.uid);
  EXPECT_EQ(sc.metadata().attempt(), 2u);
  EXPECT_EQ(sc.hostname(), "www");
  EXPECT_EQ(sc.log_directory(), "/logs/prod_web-n1_" + m.pod.uid);
  EXPECT_EQ(sc.labels().at("io.kubernetes.pod.uid"), m.pod.uid);
  EXPECT_EQ(sc.labels().at("app"), "web");
  EXPECT_EQ(sc.annotations().at("kubernetes.io/config.source"), "file");
  EXPECT_EQ(sc.linux().cgroup_parent(), "/test/kubepods/burstable/pod" + m.pod.uid);
  EXPECT_EQ(sc.linux().sysctls().at("net.ipv4.ip_unprivileged_port_start"), "0");
  EXPECT_EQ(sc.dns_config().servers(0), "10.0.0.10");
  EXPECT_EQ(sc.dns_config().searches(0), "example.org");
  EXPECT_EQ(sc.dns_config().options(0), "ndots:2");
  ASSERT_EQ(sc.port_mappings_size(), 1);
  EXPECT_EQ(sc.port_mappings(0).host_port(), 8080);
  EXPECT_EQ(sc.linux().security_context().namespace_options().network(), cri::POD);
  EXPECT_EQ(sc.linux().security_context().namespace_options().pid(), cri::CONTAINER);
}

TEST(CriConvert, ContainerConfigAsTheKubeletBuildsIt) {
  Config cfg;
  auto m = manifest_from_text("/m/web.yaml", kPod, "n1");
  auto& c = m.pod.spec.containers[0];
  auto cc = container_config(cfg, m.pod, c, 3, {"10.1.2.3", "192.168.0.1", "n1"}, {});
  EXPECT_EQ(cc.metadata().attempt(), 3u);
  EXPECT_EQ(cc.log_path(), "app/3.log");
  EXPECT_EQ(cc.command(2), "echo hello web-n1 $(kept)");
  EXPECT_EQ(cc.envs(2).value(), "10.1.2.3");
  EXPECT_EQ(cc.labels().at("io.kubernetes.container.name"), "app");
  EXPECT_EQ(cc.annotations().at("io.kubernetes.container.restartCount"), "3");
  EXPECT_EQ(cc.annotations().at("io.kubernetes.container.hash"), c.hash);
  auto& res = cc.linux().resources();
  EXPECT_EQ(res.cpu_shares(), 256);
  EXPECT_EQ(res.cpu_quota(), 150000);
  EXPECT_EQ(res.memory_limit_in_bytes(), 64 << 20);
  auto& sec = cc.linux().security_context();
  EXPECT_EQ(sec.run_as_user().value(), 1000);
  EXPECT_TRUE(sec.readonly_rootfs());
  EXPECT_TRUE(sec.no_new_privs());
  EXPECT_EQ(sec.capabilities().add_capabilities(0), "NET_ADMIN");
  EXPECT_EQ(sec.capabilities().drop_capabilities(0), "ALL");
  EXPECT_EQ(sec.seccomp().profile_type(), cri::SecurityProfile::RuntimeDefault);
  EXPECT_GT(sec.masked_paths_size(), 0);
}

TEST(CriConvert, ExpandVars) {
  std::vector<std::pair<std::string, std::string>> env = {{"A", "1"}};
  EXPECT_EQ(expand_vars("$(A)-$(B)-$$(A)-$", env), "1-$(B)-$(A)-$");
}

#include "agent/lib/volumes.hpp"

TEST(CriConvert, EtcHostsAsTheKubeletWritesIt) {
  Config cfg;
  cfg.cluster_domain = "cluster.local";
  auto m = manifest_from_text("/m/h.yaml", "kind: Pod\nmetadata: {name: h}\nspec: {hostname: db, subdomain: sub, "
                                           "containers: [{name: c, image: i}]}\n", "n1");
  auto text = etc_hosts_content(cfg, m.pod, "10.1.2.3");
  EXPECT_NE(text.find("127.0.0.1\tlocalhost\n"), std::string::npos);
  EXPECT_NE(text.find("10.1.2.3\tdb.sub.default.svc.cluster.local\tdb\n"), std::string::npos) << text;
  auto plain = manifest_from_text("/m/p.yaml", "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n", "n1");
  EXPECT_NE(etc_hosts_content(Config{}, plain.pod, "10.1.2.4").find("10.1.2.4\tp-n1\n"), std::string::npos);
}
