#include <gtest/gtest.h>

#include <algorithm>

#include "agent/lib/config.hpp"
#include "common/error.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;

namespace {

const std::string kHeader = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

Config from(const std::string& body, ConfigReport* report = nullptr) {
  return config_from_yaml(kHeader + body, "cfg.yaml", report);
}

std::string error_of(const std::string& text) {
  try {
    config_from_yaml(text, "cfg.yaml");
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "(no error)";
}

} // namespace

TEST(Config, Durations) {
  EXPECT_EQ(parse_duration("20s"), 20000ms);
  EXPECT_EQ(parse_duration("1m30s"), 90000ms);
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_THROW(parse_duration("20"), berth::Error);
  EXPECT_THROW(parse_duration("5 parsecs"), berth::Error);
}

TEST(Config, ReadsKubeletStyleFields) {
  auto c = config_from_yaml(R"(
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /srv/manifests
fileCheckFrequency: 5s
containerRuntimeEndpoint: /run/berthd.sock
nodeName: n1
address: 127.0.0.1
readOnlyPort: 0
cgroupRoot: /test
)", "cfg");
  finalize_config(c);
  EXPECT_EQ(c.static_pod_paths, std::vector<std::string>{"/srv/manifests"});
  EXPECT_EQ(c.file_check_frequency, 5000ms);
  EXPECT_EQ(c.runtime_endpoint, "unix:///run/berthd.sock");
  EXPECT_EQ(c.node_name, "n1");
  EXPECT_EQ(c.read_only_port, 0);
  EXPECT_EQ(c.cgroup_root, "/test");
}

TEST(Config, RejectsUnknownAndBadFields) {
  // A typo is no error (the kubelet's strict decoding only warns): reported with its line.
  ConfigReport report;
  auto typo = from("readOnlyPort: 0\nstaticPodPaht: /x\n", &report);
  EXPECT_EQ(typo.static_pod_paths, std::vector<std::string>{"/etc/kubernetes/manifests"});
  ASSERT_EQ(report.unknown.size(), 1u);
  EXPECT_EQ(report.unknown[0], (std::pair<std::string, int>{"staticPodPaht", 4}));
  EXPECT_TRUE(report.ignored.empty());
  auto lines = report.lines("cfg.yaml");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "config cfg.yaml: unknown fields, ignored (a typo?): \"staticPodPaht\" (line 4)");
  // Type and value errors name the file, the line and the key.
  EXPECT_EQ(error_of(kHeader + "\nfileCheckFrequency: soon\n").rfind("cfg.yaml:4: fileCheckFrequency: duration", 0), 0u)
      << error_of(kHeader + "\nfileCheckFrequency: soon\n");
  EXPECT_EQ(error_of(kHeader + "readOnlyPort: [1]\n").rfind("cfg.yaml:3: readOnlyPort:", 0), 0u)
      << error_of(kHeader + "readOnlyPort: [1]\n");
  EXPECT_EQ(error_of(kHeader + "cgroupDriver: systemd\nreadOnlyPort: 70000\n"),
            "cfg.yaml:4: readOnlyPort: must be 0-65535");
  EXPECT_EQ(error_of(kHeader + "containerLogMaxFiles: 1\n"), "cfg.yaml:3: containerLogMaxFiles: 1: must be 2 or more");
  EXPECT_EQ(error_of(kHeader + "imageGCHighThresholdPercent: 101\n"),
            "cfg.yaml:3: imageGCHighThresholdPercent: 101: must be 0-100");
  EXPECT_NE(error_of(kHeader + "containerLogMaxSize: lots\n").find("cfg.yaml:3: containerLogMaxSize:"),
            std::string::npos);
  auto c = from("containerRuntimeEndpoint: tcp://1.2.3.4:5\n");
  EXPECT_THROW(finalize_config(c), berth::Error);
  auto g = from("imageGCHighThresholdPercent: 70\nimageGCLowThresholdPercent: 75\n");
  EXPECT_THROW(finalize_config(g), berth::Error);
  auto d = from("staticPodPath: relative\n");
  EXPECT_THROW(finalize_config(d), berth::Error);
}

TEST(Config, NodeNameDefaultsToHostName) {
  Config c;
  finalize_config(c);
  EXPECT_FALSE(c.node_name.empty());
}

TEST(Config, NamesAndDirectoriesThatBecomePathsAreChecked) {
  // The node name ends every pod name, which names the pod's log directory.
  for (const char* bad : {"../../etc", "a/b", "node_1", "-x"}) {
    auto c = from(fmt::format("nodeName: \"{}\"\n", bad));
    try {
      finalize_config(c);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find("nodeName"), std::string::npos) << e.what();
    }
  }
  auto upper = from("nodeName: Node-1.Example\n");
  finalize_config(upper);
  EXPECT_EQ(upper.node_name, "node-1.example");
  for (const char* field : {"rootDir: var/lib", "podLogsDir: /var/log/../../x"}) {
    auto c = from(fmt::format("nodeName: n\n{}\n", field));
    EXPECT_THROW(finalize_config(c), berth::Error) << field;
  }
}

TEST(Config, FileIsBoundedLikeAManifest) {
  // An alias bomb in the config is refused as one in a manifest is.
  std::string bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n";
  for (char c = 'b'; c <= 'i'; c++)
    bomb += fmt::format("{}: &{} [*{},*{},*{},*{},*{},*{},*{},*{},*{},*{}]\n", c, c, char(c - 1), char(c - 1),
                        char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1),
                        char(c - 1));
  EXPECT_THROW(config_from_yaml(kHeader + bomb, "cfg"), berth::Error);
}

TEST(Config, KindAndApiVersionAreRequired) {
  EXPECT_EQ(error_of("staticPodPath: /x\n").rfind("cfg.yaml: apiVersion: missing;", 0), 0u) << error_of("staticPodPath: /x\n");
  EXPECT_EQ(error_of("apiVersion: kubelet.config.k8s.io/v1beta1\n\nkind: BerthletConfiguration\n"),
            "cfg.yaml:3: kind: \"BerthletConfiguration\": expected KubeletConfiguration");
  EXPECT_EQ(error_of("kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1\n"),
            "cfg.yaml:2: apiVersion: \"kubelet.config.k8s.io/v1\": expected kubelet.config.k8s.io/v1beta1");
  EXPECT_NE(error_of("- a\n- b\n").find("cfg.yaml"), std::string::npos);
  EXPECT_NE(error_of("a: [\n").find("cfg.yaml: invalid YAML at line"), std::string::npos) << error_of("a: [\n");
}

// What kubeadm 1.31 writes to /var/lib/kubelet/config.yaml (kubeadm init, defaults):
// every duration it leaves to the kubelet's defaulting is "0s", the endpoint is "".
const char kKubeadmConfig[] = R"(apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
evictionHard:
  imagefs.available: 15%
  memory.available: 100Mi
containerLogMaxSize: 50Mi
containerLogMaxFiles: 3
imageGCHighThresholdPercent: 90
featureGates:
  NodeSwap: true
)";

TEST(Config, ReadsWhatKubeadmWrites) {
  ConfigReport report;
  auto c = config_from_yaml(kKubeadmConfig, "/var/lib/kubelet/config.yaml", &report);
  finalize_config(c);
  EXPECT_EQ(c.cgroup_driver, CgroupDriver::systemd);
  EXPECT_EQ(c.cluster_dns, std::vector<std::string>{"10.96.0.10"});
  EXPECT_EQ(c.cluster_domain, "cluster.local");
  EXPECT_EQ(c.resolv_conf, "/run/systemd/resolve/resolv.conf");
  EXPECT_EQ(c.static_pod_paths, std::vector<std::string>{"/etc/kubernetes/manifests"});
  // "0s" and "" are the kubelet's defaults.
  EXPECT_EQ(c.file_check_frequency, 20s);
  EXPECT_EQ(c.runtime_request_timeout, 2min);
  EXPECT_EQ(c.image_minimum_gc_age, 2min);
  EXPECT_EQ(c.runtime_endpoint, "unix:///run/containerd/containerd.sock");
  EXPECT_EQ(c.container_log_max_bytes, 50 << 20);
  EXPECT_EQ(c.container_log_max_files, 3);
  EXPECT_EQ(c.image_gc_high_threshold_percent, 90);
  EXPECT_EQ(c.image_gc_low_threshold_percent, 80);
  EXPECT_TRUE(report.unknown.empty());
  auto ignored = report.ignored;
  std::sort(ignored.begin(), ignored.end());
  EXPECT_EQ(ignored, (std::vector<std::string>{
                         "authentication", "authorization", "cpuManagerReconcilePeriod",
                         "evictionHard", "evictionPressureTransitionPeriod", "featureGates", "healthzBindAddress",
                         "healthzPort", "httpCheckFrequency", "imageMaximumGCAge", "memorySwap",
                         "nodeStatusReportFrequency", "rotateCertificates",
                         "shutdownGracePeriod", "shutdownGracePeriodCriticalPods", "streamingConnectionIdleTimeout",
                         "syncFrequency", "volumeStatsAggPeriod"}));
  auto lines = report.lines("k.yaml");
  ASSERT_EQ(lines.size(), 1u); // one line for all of them
  EXPECT_NE(lines[0].find("does not implement, ignored: authentication, authorization,"), std::string::npos) << lines[0];
}

TEST(Config, PrintConfigRoundTrips) {
  auto c = from(R"(staticPodPaths: [/a, "/b c"]
fileCheckFrequency: 1m30s
containerRuntimeEndpoint: unix:///run/berthd/berthd.sock
nodeName: n1
readOnlyPort: 0
cgroupDriver: systemd
clusterDNS: [10.0.0.10, 10.0.0.11]
clusterDomain: "cluster.local"
resolvConf: ""
containerLogMaxSize: 5Mi
containerLogMaxFiles: 4
containerLogMonitorInterval: 250ms
imageGCHighThresholdPercent: 60
imageGCLowThresholdPercent: 40
imageMinimumGCAge: 1s
imageGCPeriod: 2s
logging: {format: json, verbosity: 4}
)");
  finalize_config(c);
  EXPECT_EQ(c.logging_format, "json");
  EXPECT_EQ(c.logging_verbosity, 4);
  auto text = config_to_yaml(c);
  ConfigReport report;
  auto back = config_from_yaml(text, "printed", &report);
  finalize_config(back);
  EXPECT_TRUE(report.ignored.empty() && report.unknown.empty()) << text;
  EXPECT_EQ(config_to_yaml(back), text);
  EXPECT_EQ(back.static_pod_paths, (std::vector<std::string>{"/a", "/b c"}));
  EXPECT_EQ(back.file_check_frequency, 90s);
  EXPECT_EQ(back.read_only_port, 0);
  EXPECT_EQ(back.resolv_conf, "");
  EXPECT_EQ(back.container_log_max_bytes, 5 << 20);
  EXPECT_EQ(back.container_log_monitor_interval, 250ms);
  EXPECT_EQ(back.image_gc_low_threshold_percent, 40);
  EXPECT_EQ(back.image_gc_period, 2s);
  EXPECT_NE(text.find("kind: KubeletConfiguration\n"), std::string::npos);
  // The defaults print and read back too.
  Config d;
  finalize_config(d);
  auto dt = config_to_yaml(d);
  auto db = config_from_yaml(dt, "defaults");
  finalize_config(db);
  EXPECT_EQ(config_to_yaml(db), dt);
}

TEST(Config, LoggingFormatAndVerbosity) {
  auto c = from("logging:\n  format: text\n  flushFrequency: 5s\n  verbosity: 2\n");
  EXPECT_EQ(c.logging_format, "text");
  EXPECT_EQ(c.logging_verbosity, 2);
  auto e = error_of(kHeader + "readOnlyPort: 0\nlogging:\n  format: xml\n");
  EXPECT_NE(e.find("cfg.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("xml"), std::string::npos) << e;
  EXPECT_NE(error_of(kHeader + "logging: json\n").find("logging"), std::string::npos);
}
