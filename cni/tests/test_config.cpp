// Network configuration parsing, validation and directory loading.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "cni/lib/client.hpp"
#include "cni/lib/config.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth;
using namespace berth::cni;
using berth::test_support::TempDir;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kList = R"({"cniVersion":"1.0.0","name":"net1","plugins":[
  {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}},
  {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]})";

} // namespace

TEST(Config, ParsesConflist) {
  auto l = parse_conflist(kList, "a.conflist");
  EXPECT_EQ(l.name, "net1");
  EXPECT_EQ(l.cni_version, "1.0.0");
  ASSERT_EQ(l.plugins.size(), 2u);
  EXPECT_EQ(l.plugins[0].type, "bridge");
  EXPECT_TRUE(l.plugins[1].capabilities.at("portMappings"));
  EXPECT_FALSE(l.plugins[1].capabilities.at("bandwidth"));
  EXPECT_EQ(l.bytes, kList);
}

TEST(Config, ConfBecomesOnePluginList) {
  auto l = parse_conf(R"({"cniVersion":"0.4.0","name":"single","type":"bridge"})", "b.conf");
  ASSERT_EQ(l.plugins.size(), 1u);
  EXPECT_EQ(l.plugins[0].type, "bridge");
  auto j = json::parse(l.bytes);
  EXPECT_EQ(j["plugins"][0]["type"], "bridge");
  EXPECT_EQ(j["name"], "single");
}

TEST(Config, ErrorsNameFileAndField) {
  EXPECT_EQ(message_of([] { parse_conflist("{", "/x/bad.conflist"); }), "/x/bad.conflist: not valid JSON");
  EXPECT_EQ(message_of([] { parse_conflist(R"({"cniVersion":"1.0.0","plugins":[{"type":"x"}]})", "f"); }),
            "f: name: missing network name");
  EXPECT_EQ(message_of([] { parse_conflist(R"({"name":"n","cniVersion":"1.0.0","plugins":[{"type":"x"},{}]})", "f"); }),
            "f: plugins[1]: missing \"type\" (the plugin binary's name)");
  EXPECT_EQ(message_of([] { parse_conflist(R"({"name":"n","cniVersion":"9.0.0","plugins":[{"type":"x"}]})", "f"); }),
            "f: cniVersion: unsupported version \"9.0.0\" (supported: 0.1.0 to 1.1.0)");
  EXPECT_EQ(message_of([] { parse_conflist(R"({"name":"n","cniVersion":"1.0.0","plugins":[]})", "f"); }),
            "f: plugins: expected a non-empty array of plugin configurations");
  EXPECT_EQ(message_of([] { parse_conflist(R"({"name":"bad name","cniVersion":"1.0.0","plugins":[{"type":"x"}]})", "f"); }),
            "f: name: invalid network name \"bad name\": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  EXPECT_EQ(message_of([] { parse_conflist(R"({"name":"n","cniVersion":"1.0.0","plugins":[{"type":"../x"}]})", "f"); }),
            "f: plugins[0].type: \"../x\" is not a plugin name");
  EXPECT_EQ(message_of([] { parse_conf(R"({"name":"n","cniVersion":"1.0.0"})", "g.conf"); }),
            "g.conf: missing \"type\" (the plugin binary's name)");
}

TEST(Config, Names) {
  EXPECT_NO_THROW(validate_interface_name("eth0"));
  EXPECT_THROW(validate_interface_name("a-very-long-interface"), Error);
  EXPECT_THROW(validate_interface_name("a/b"), Error);
  EXPECT_THROW(validate_container_id("-x"), Error);
  EXPECT_NO_THROW(validate_container_id("abc-123_x.y"));
}

TEST(Config, DirectoryOrderDefaultAndReload) {
  TempDir d("cni-unit");
  write_file(d.path() + "/20-b.conflist", R"({"cniVersion":"1.0.0","name":"b","plugins":[{"type":"x"}]})");
  write_file(d.path() + "/10-a.conf", R"({"cniVersion":"1.0.0","name":"a","type":"y"})");
  write_file(d.path() + "/05-bad.json", "{oops");
  write_file(d.path() + "/README", "not a config");
  ConfigDir dir(d.path());
  ASSERT_EQ(dir.networks().size(), 2u);
  EXPECT_EQ(dir.default_network().name, "a");
  EXPECT_EQ(dir.network("b").plugins[0].type, "x");
  ASSERT_EQ(dir.errors().size(), 1u);
  EXPECT_NE(dir.errors()[0].find("05-bad.json: not valid JSON"), std::string::npos);
  EXPECT_NE(message_of([&] { dir.network("zzz"); }).find("network \"zzz\" not found"), std::string::npos);

  EXPECT_FALSE(dir.reload()); // nothing changed
  write_file(d.path() + "/01-c.conflist", R"({"cniVersion":"1.1.0","name":"c","plugins":[{"type":"z"}]})");
  EXPECT_TRUE(dir.reload());
  EXPECT_EQ(dir.default_network().name, "c");
}

TEST(Config, ReloadSeesARecreatedDirectory) {
  TempDir d("cni-unit");
  std::string conf_dir = d.path() + "/net.d";
  std::filesystem::create_directory(conf_dir);
  write_file(conf_dir + "/10-a.conflist", R"({"cniVersion":"1.0.0","name":"a","plugins":[{"type":"x"}]})");
  ConfigDir dir(conf_dir);
  ASSERT_EQ(dir.default_network().name, "a");
  std::filesystem::remove_all(conf_dir);
  EXPECT_TRUE(dir.reload());
  EXPECT_TRUE(dir.networks().empty());
  std::filesystem::create_directory(conf_dir);
  write_file(conf_dir + "/10-b.conflist", R"({"cniVersion":"1.0.0","name":"b","plugins":[{"type":"x"}]})");
  EXPECT_TRUE(dir.reload());
  EXPECT_EQ(dir.default_network().name, "b");
  write_file(conf_dir + "/05-c.conflist", R"({"cniVersion":"1.0.0","name":"c","plugins":[{"type":"x"}]})");
  EXPECT_TRUE(dir.reload()); // watched again
  EXPECT_EQ(dir.default_network().name, "c");
  EXPECT_FALSE(dir.reload());
}

TEST(Config, EmptyDirectoryHasNoDefault) {
  TempDir d("cni-unit");
  ConfigDir dir(d.path());
  EXPECT_NE(message_of([&] { dir.default_network(); }).find("no valid network configuration"), std::string::npos);
}

TEST(Client, RuntimeConfigOnlyFromDeclaredCapabilities) {
  auto l = parse_conflist(kList, "a.conflist");
  RuntimeConf rt;
  rt.capability_args = {{"portMappings", json::array({{{"hostPort", 80}}})}, {"bandwidth", {{"rate", 1}}},
                        {"mac", "aa:bb:cc:dd:ee:ff"}};
  json prev = {{"cniVersion", "1.0.0"}, {"ips", json::array()}};
  json bridge = Client::plugin_config(l, l.plugins[0], nullptr, &rt);
  EXPECT_FALSE(bridge.contains("runtimeConfig"));
  EXPECT_FALSE(bridge.contains("prevResult"));
  EXPECT_EQ(bridge["name"], "net1");
  EXPECT_EQ(bridge["cniVersion"], "1.0.0");
  json pm = Client::plugin_config(l, l.plugins[1], prev, &rt);
  EXPECT_EQ(pm["runtimeConfig"].size(), 1u); // bandwidth is declared false, mac not declared
  EXPECT_EQ(pm["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
  EXPECT_EQ(pm["prevResult"], prev);
}
