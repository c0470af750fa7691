// berth-bridge's stdin: bad values give CNI error 7 naming the field.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "cni/bridge/conf.hpp"

namespace {

using namespace berth::cni;

uint32_t code_of(const std::string& conf, const Invocation& inv, std::string& msg) {
  try {
    parse_bridge_conf(conf, inv);
  } catch (const CniFailure& e) {
    msg = e.what();
    return e.code();
  }
  return 0;
}

Invocation add_inv(std::vector<std::pair<std::string, std::string>> args = {}) {
  return Invocation{"ADD", "c1", "/proc/self/ns/net", "eth0", "", {}, std::move(args)};
}

TEST(BridgeConf, NetworkNameMustBeValid) {
  std::string msg;
  // host-local's store is dataDir/<name>: "" or ".." would escape it.
  for (const char* name : {"", "..", "../etc", "a/b"}) {
    json c = {{"cniVersion", "1.0.0"}, {"name", name}, {"type", "berth-bridge"}};
    EXPECT_EQ(code_of(c.dump(), add_inv(), msg), 7u) << name;
    EXPECT_NE(msg.find("name"), std::string::npos) << msg;
  }
  json missing = {{"cniVersion", "1.0.0"}, {"type", "berth-bridge"}};
  EXPECT_EQ(code_of(missing.dump(), add_inv(), msg), 7u);
  EXPECT_NE(msg.find("missing network name"), std::string::npos) << msg;
}

TEST(BridgeConf, MacAndIpFromArgsAreValidated) {
  json c = {{"cniVersion", "1.0.0"}, {"name", "n"}, {"type", "berth-bridge"}};
  std::string msg;
  EXPECT_EQ(code_of(c.dump(), add_inv({{"MAC", "zz:00:00:00:00:01"}}), msg), 7u);
  EXPECT_NE(msg.find("CNI_ARGS MAC"), std::string::npos) << msg;
  EXPECT_EQ(code_of(c.dump(), add_inv({{"MAC", "01:00:5e:00:00:01"}}), msg), 7u);
  EXPECT_NE(msg.find("multicast"), std::string::npos) << msg;
  EXPECT_EQ(code_of(c.dump(), add_inv({{"IP", "10.0.0.300"}}), msg), 7u);
  EXPECT_NE(msg.find("CNI_ARGS IP"), std::string::npos) << msg;
  c["runtimeConfig"] = {{"mac", "02:00:00:00:00"}};
  EXPECT_EQ(code_of(c.dump(), add_inv(), msg), 7u);
  EXPECT_NE(msg.find("runtimeConfig.mac"), std::string::npos) << msg;
  c["runtimeConfig"] = {{"mac", "02:00:00:00:00:0A"}};
  EXPECT_EQ(code_of(c.dump(), add_inv(), msg), 0u) << msg;
}

TEST(BridgeConf, MacPrecedenceAndRequestedIpsAsTheReference) {
  json c = {{"cniVersion", "1.0.0"}, {"name", "n"}, {"type", "berth-bridge"},
            {"args", {{"cni", {{"mac", "02:00:00:00:00:02"}, {"ips", {"10.0.0.2/24"}}}}}},
            {"runtimeConfig", {{"mac", "02:00:00:00:00:01"}, {"ips", {"10.0.0.1/24"}}}}};
  Invocation inv = add_inv({{"MAC", "02:00:00:00:00:03"}, {"IP", "10.0.0.3"}});
  BridgeConf b = parse_bridge_conf(c.dump(), inv);
  EXPECT_EQ(b.mac, "02:00:00:00:00:01"); // runtimeConfig first
  EXPECT_EQ(b.requested_ips.size(), 3u); // the union
  c.erase("runtimeConfig");
  EXPECT_EQ(parse_bridge_conf(c.dump(), inv).mac, "02:00:00:00:00:02"); // then args.cni
  c.erase("args");
  EXPECT_EQ(parse_bridge_conf(c.dump(), inv).mac, "02:00:00:00:00:03"); // then CNI_ARGS
}

TEST(BridgeConf, BadEnvironmentIsErrorFourNamingTheVariable) {
  auto code_for = [](const char* cid, const char* ifname, std::string& msg) -> uint32_t {
    ::setenv("CNI_COMMAND", "DEL", 1);
    ::setenv("CNI_CONTAINERID", cid, 1);
    ::setenv("CNI_IFNAME", ifname, 1);
    try {
      read_invocation();
    } catch (const CniFailure& e) {
      msg = e.what();
      return e.code();
    }
    return 0;
  };
  std::string msg;
  EXPECT_EQ(code_for("../x", "eth0", msg), 4u);
  EXPECT_EQ(msg.rfind("CNI_CONTAINERID: invalid container ID", 0), 0u) << msg;
  EXPECT_EQ(code_for("c1", "a-very-long-ifname", msg), 4u);
  EXPECT_EQ(msg.rfind("CNI_IFNAME: invalid interface name", 0), 0u) << msg;
  EXPECT_EQ(code_for("c1", "eth0", msg), 0u) << msg;
  for (const char* k : {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME"}) ::unsetenv(k);
}

} // namespace
