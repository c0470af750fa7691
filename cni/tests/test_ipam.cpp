// host-local-compatible allocation on disk.
#include <gtest/gtest.h>

#include <filesystem>

#include "cni/bridge/host_local.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth;
using namespace berth::cni;
using berth::test_support::TempDir;

namespace {
HostLocalConfig config(const std::string& dir, const std::string& ranges) {
  json ipam = json::parse(R"({"type":"host-local","ranges":)" + ranges + R"(,"dataDir":")" + dir + R"("})");
  return parse_host_local(ipam, "net1");
}

std::string address(const json& r, size_t i = 0) { return r["ips"][i]["address"]; }
} // namespace

TEST(Ipam, AllocatesSequentiallySkippingGatewayInHostLocalFormat) {
  TempDir d("cni-ipam");
  auto cfg = config(d.path(), R"([[{"subnet":"10.9.0.0/29"}]])");
  json a = host_local_add(cfg, "c1", "eth0", {}, "1.0.0");
  EXPECT_EQ(address(a), "10.9.0.2/29");
  EXPECT_EQ(a["ips"][0]["gateway"], "10.9.0.1");
  EXPECT_EQ(read_file(d.path() + "/net1/10.9.0.2"), "c1\r\neth0");
  EXPECT_EQ(read_file(d.path() + "/net1/last_reserved_ip.0"), "10.9.0.2");
  EXPECT_TRUE(path_exists(d.path() + "/net1/lock"));
  EXPECT_EQ(address(host_local_add(cfg, "c2", "eth0", {}, "1.0.0")), "10.9.0.3/29");
}

TEST(Ipam, RoundRobinAfterReleaseAndExhaustion) {
  TempDir d("cni-ipam");
  auto cfg = config(d.path(), R"([[{"subnet":"10.9.0.0/29"}]])"); // .2-.6 usable
  for (int i = 0; i < 5; ++i) host_local_add(cfg, "c" + std::to_string(i), "eth0", {}, "1.0.0");
  try {
    host_local_add(cfg, "c9", "eth0", {}, "1.0.0");
    FAIL() << "allocation from a full range succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no IP addresses available in range set: 10.9.0.1-10.9.0.6"), std::string::npos);
  }
  host_local_del(cfg, "c1", "eth0"); // frees .3
  EXPECT_FALSE(path_exists(d.path() + "/net1/10.9.0.3"));
  EXPECT_EQ(address(host_local_add(cfg, "c9", "eth0", {}, "1.0.0")), "10.9.0.3/29");
}

TEST(Ipam, DuplicateAllocationRefused) {
  TempDir d("cni-ipam");
  auto cfg = config(d.path(), R"([[{"subnet":"10.9.0.0/24"}]])");
  host_local_add(cfg, "c1", "eth0", {}, "1.0.0");
  EXPECT_THROW(host_local_add(cfg, "c1", "eth0", {}, "1.0.0"), Error);
  EXPECT_NO_THROW(host_local_add(cfg, "c1", "eth1", {}, "1.0.0"));
}

TEST(Ipam, FailedAddKeepsTheContainersEarlierReservations) {
  TempDir d("cni-ipam");
  auto cfg = config(d.path(), R"([[{"subnet":"10.9.0.0/24"}],[{"subnet":"fd00:9::/64"}]])");
  json first = host_local_add(cfg, "c1", "eth0", {}, "1.0.0");
  // A retried ADD is refused as a duplicate; c1's addresses stay reserved.
  EXPECT_THROW(host_local_add(cfg, "c1", "eth0", {}, "1.0.0"), Error);
  EXPECT_TRUE(std::filesystem::exists(d.path() + "/net1/10.9.0.2"));
  EXPECT_TRUE(std::filesystem::exists(d.path() + "/net1/fd00:9::2"));
  EXPECT_NO_THROW(host_local_check(cfg, "c1", "eth0"));
  // A failure in the second range set releases the first set's new address only.
  auto cfg2 = config(d.path(), R"([[{"subnet":"10.9.0.0/24"}],[{"subnet":"fd00:9::/64"}]])");
  EXPECT_THROW(host_local_add(cfg2, "c2", "eth0", {IpAddr::parse("fd00:9::2").value()}, "1.0.0"), Error);
  EXPECT_FALSE(std::filesystem::exists(d.path() + "/net1/10.9.0.3"));
  EXPECT_TRUE(std::filesystem::exists(d.path() + "/net1/fd00:9::2"));
  EXPECT_EQ(address(first, 0), "10.9.0.2/24");
}

TEST(Ipam, DualStackRequestedAndLegacyFiles) {
  TempDir d("cni-ipam");
  auto cfg = config(d.path(), R"([[{"subnet":"10.9.0.0/24","rangeStart":"10.9.0.10","rangeEnd":"10.9.0.20"}],
                                [{"subnet":"fd10::/64"}]])");
  json r = host_local_add(cfg, "c1", "eth0", {*IpAddr::parse("10.9.0.15")}, "0.4.0");
  EXPECT_EQ(address(r, 0), "10.9.0.15/24");
  EXPECT_EQ(r["ips"][0]["version"], "4");
  EXPECT_EQ(address(r, 1), "fd10::2/64");
  EXPECT_EQ(read_file(d.path() + "/net1/last_reserved_ip.1"), "fd10::2");
  EXPECT_THROW(host_local_add(cfg, "c2", "eth0", {*IpAddr::parse("10.9.0.15")}, "1.0.0"), Error);
  EXPECT_THROW(host_local_add(cfg, "c3", "eth0", {*IpAddr::parse("10.8.0.1")}, "1.0.0"), Error);
  // A reservation written before ifnames were recorded is released by id alone.
  write_file(d.path() + "/net1/10.9.0.11", "old");
  host_local_del(cfg, "old", "eth0");
  EXPECT_FALSE(path_exists(d.path() + "/net1/10.9.0.11"));
}

TEST(Ipam, GcKeepsOnlyValidAttachments) {
  TempDir d("cni-ipam");
  auto cfg = config(d.path(), R"([[{"subnet":"10.9.0.0/24"}]])");
  host_local_add(cfg, "keep", "eth0", {}, "1.0.0");
  host_local_add(cfg, "stale", "eth0", {}, "1.0.0");
  host_local_gc(cfg, {{"keep", "eth0"}});
  EXPECT_TRUE(path_exists(d.path() + "/net1/10.9.0.2"));
  EXPECT_FALSE(path_exists(d.path() + "/net1/10.9.0.3"));
  EXPECT_NO_THROW(host_local_check(cfg, "keep", "eth0"));
  EXPECT_THROW(host_local_check(cfg, "stale", "eth0"), Error);
}

TEST(Ipam, ConfigErrorsNameTheField) {
  auto msg = [](const std::string& ranges) {
    try {
      config("/tmp", ranges);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg(R"([[{"subnet":"10.9.0.1/24"}]])"),
            "ipam.ranges[0][0].subnet: network has host bits set: for a /24 the network address is 10.9.0.0");
  EXPECT_EQ(msg(R"([[{"subnet":"10.9.0.0/31"}]])"), "ipam.ranges[0][0].subnet: network 10.9.0.0/31 too small to allocate from");
  EXPECT_EQ(msg(R"([[{"subnet":"10.9.0.0/24","rangeStart":"10.8.0.1"}]])"),
            "ipam.ranges[0][0].rangeStart: 10.8.0.1 not in network 10.9.0.0/24");
  EXPECT_EQ(msg(R"([[{"subnet":"nope"}]])"), "ipam.ranges[0][0].subnet: invalid CIDR \"nope\" (expected e.g. 10.1.0.0/24)");
  EXPECT_EQ(msg(R"([[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.9.0.0/25"}]])"),
            "ipam.ranges: range set 1 overlaps with range set 0");
  EXPECT_EQ(msg("[]"), "ipam.ranges: no IP ranges specified (set \"ranges\" or \"subnet\")");
}

TEST(Ipam, ResolvConf) {
  TempDir d("cni-ipam");
  write_file(d.path() + "/resolv.conf", "# c\nnameserver 10.0.0.53\nnameserver fd00::53\nsearch a.example b.example\n"
                                      "options ndots:5\ndomain example\n");
  json dns = parse_resolv_conf(d.path() + "/resolv.conf");
  EXPECT_EQ(dns["nameservers"], json::array({"10.0.0.53", "fd00::53"}));
  EXPECT_EQ(dns["search"], json::array({"a.example", "b.example"}));
  EXPECT_EQ(dns["options"][0], "ndots:5");
  EXPECT_EQ(dns["domain"], "example");
}
