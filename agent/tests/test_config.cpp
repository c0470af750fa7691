#include <gtest/gtest.h>

#include "agent/lib/config.hpp"
#include "common/error.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;

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
kind: BerthletConfiguration
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
  try {
    config_from_yaml("staticPodPaht: /x\n", "cfg.yaml");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_STREQ(e.what(), "cfg.yaml: staticPodPaht: unknown field");
  }
  try {
    config_from_yaml("fileCheckFrequency: soon\n", "cfg.yaml");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.yaml: fileCheckFrequency:"), std::string::npos);
  }
  auto c = config_from_yaml("containerRuntimeEndpoint: tcp://1.2.3.4:5\n", "cfg");
  EXPECT_THROW(finalize_config(c), berth::Error);
  auto d = config_from_yaml("staticPodPath: relative\n", "cfg");
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
    auto c = config_from_yaml(fmt::format("nodeName: \"{}\"\n", bad), "cfg");
    try {
      finalize_config(c);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find("nodeName"), std::string::npos) << e.what();
    }
  }
  auto upper = config_from_yaml("nodeName: Node-1.Example\n", "cfg");
  finalize_config(upper);
  EXPECT_EQ(upper.node_name, "node-1.example");
  for (const char* field : {"rootDir: var/lib", "podLogsDir: /var/log/../../x"}) {
    auto c = config_from_yaml(fmt::format("nodeName: n\n{}\n", field), "cfg");
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
  EXPECT_THROW(config_from_yaml(bomb, "cfg"), berth::Error);
}
