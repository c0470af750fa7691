// Version comparison and result conversion between spec versions.
#include <gtest/gtest.h>

#include "cni/lib/version.hpp"
#include "common/error.hpp"

using namespace berth::cni;

TEST(Version, Compare) {
  EXPECT_LT(compare_versions("0.4.0", "1.0.0"), 0);
  EXPECT_EQ(compare_versions("1.1.0", "1.1.0"), 0);
  EXPECT_GT(compare_versions("0.3.1", "0.3.0"), 0);
  EXPECT_TRUE(version_at_least("1.1.0", "0.4.0"));
  EXPECT_THROW(compare_versions("1.x", "1.0.0"), berth::Error);
}

namespace {
const json kV1 = json::parse(R"({"cniVersion":"1.0.0",
  "interfaces":[{"name":"cni0","mac":"00:11:22:33:44:55"},{"name":"eth0","mac":"00:11:22:33:44:66","sandbox":"/run/netns/x"}],
  "ips":[{"interface":1,"address":"10.1.0.2/24","gateway":"10.1.0.1"},{"interface":1,"address":"fd00::2/64","gateway":"fd00::1"}],
  "routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"::/0"}],
  "dns":{"nameservers":["10.1.0.53"]}})");
}

TEST(Version, V1ToV04AddsIpVersion) {
  json r = convert_result(kV1, "0.4.0");
  EXPECT_EQ(r["cniVersion"], "0.4.0");
  EXPECT_EQ(r["ips"][0]["version"], "4");
  EXPECT_EQ(r["ips"][1]["version"], "6");
  EXPECT_EQ(r["interfaces"], kV1["interfaces"]);
  json back = convert_result(r, "1.1.0");
  EXPECT_FALSE(back["ips"][0].contains("version"));
  json expect = kV1;
  expect["cniVersion"] = "1.1.0";
  EXPECT_EQ(back, expect);
}

TEST(Version, ToLegacy020) {
  json r = convert_result(kV1, "0.2.0");
  EXPECT_EQ(r["ip4"]["ip"], "10.1.0.2/24");
  EXPECT_EQ(r["ip4"]["gateway"], "10.1.0.1");
  EXPECT_EQ(r["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
  EXPECT_EQ(r["ip6"]["ip"], "fd00::2/64");
  EXPECT_EQ(r["dns"]["nameservers"][0], "10.1.0.53");
  EXPECT_FALSE(r.contains("ips"));
  EXPECT_FALSE(r.contains("interfaces"));
}

TEST(Version, FromLegacy) {
  json legacy = json::parse(R"({"cniVersion":"0.2.0","ip4":{"ip":"10.2.0.5/16","gateway":"10.2.0.1",
    "routes":[{"dst":"0.0.0.0/0"}]},"dns":{}})");
  json r = convert_result(legacy, "1.0.0");
  ASSERT_EQ(r["ips"].size(), 1u);
  EXPECT_EQ(r["ips"][0]["address"], "10.2.0.5/16");
  EXPECT_FALSE(r["ips"][0].contains("version"));
  EXPECT_EQ(r["routes"][0]["dst"], "0.0.0.0/0");
  json v03 = convert_result(legacy, "0.3.1");
  EXPECT_EQ(v03["ips"][0]["version"], "4");
}

TEST(Version, RejectsWhatATargetCannotHold) {
  json two = kV1;
  two["ips"].push_back({{"address", "10.1.0.3/24"}});
  EXPECT_THROW(convert_result(two, "0.2.0"), berth::Error);
  EXPECT_THROW(convert_result(kV1, "2.0.0"), berth::Error);
  EXPECT_THROW(convert_result(json::array(), "1.0.0"), berth::Error);
}

TEST(Version, MalformedResultNamesTheField) {
  auto message = [](const json& r) {
    try {
      convert_result(r, "0.2.0");
    } catch (const berth::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(json::parse(R"({"cniVersion":"1.0.0","ips":[5]})")), "result.ips[0]: expected an object");
  EXPECT_EQ(message(json::parse(R"({"cniVersion":"1.0.0","ips":[{"address":1}]})")),
            "result.ips[0].address: expected a string");
  EXPECT_EQ(message(json::parse(R"({"cniVersion":"1.0.0","routes":{}})")), "result.routes: expected an array");
  EXPECT_EQ(message(json::parse(R"({"cniVersion":"0.2.0","ip4":{"ip":[]}})")),
            "result.ip4: expected an object with a string \"ip\"");
}
