// The libcni-format attachment cache.
#include <gtest/gtest.h>

#include <filesystem>

#include "cni/lib/cache.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth;
using namespace berth::cni;
using berth::test_support::TempDir;

TEST(Base64, RoundTripsAndRejectsJunk) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "{\"x\":1}\n\xff"}) {
    auto d = base64_decode(base64_encode(s));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode("abcd"), "YWJjZA==");
  EXPECT_FALSE(base64_decode("YW*j"));
  EXPECT_FALSE(base64_decode("YWJ"));
}

TEST(Cache, LibcniFileFormat) {
  TempDir d("cni-cache");
  ResultCache cache(d.path());
  CachedAttachment a{"net1", "cid1", "eth0", "/run/netns/p", R"({"name":"net1"})", {{"K8S_POD_NAME", "p"}},
                     json{{"portMappings", json::array()}}, json{{"cniVersion", "1.0.0"}, {"ips", json::array()}}};
  cache.put(a);
  std::string path = d.path() + "/results/net1-cid1-eth0";
  json j = json::parse(read_file(path));
  EXPECT_EQ(j["kind"], "cniCacheV1");
  EXPECT_EQ(j["containerId"], "cid1");
  EXPECT_EQ(j["ifName"], "eth0");
  EXPECT_EQ(j["networkName"], "net1");
  EXPECT_EQ(j["netns"], "/run/netns/p");
  EXPECT_EQ(j["config"], base64_encode(R"({"name":"net1"})"));
  EXPECT_EQ(j["cniArgs"][0][0], "K8S_POD_NAME");
  EXPECT_EQ(j["result"]["cniVersion"], "1.0.0");

  auto got = cache.get("net1", "cid1", "eth0");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->config, a.config);
  EXPECT_EQ(got->cni_args, a.cni_args);
  EXPECT_EQ(got->result, a.result);
  EXPECT_FALSE(cache.get("net1", "cid2", "eth0"));
}

TEST(Cache, ListSkipsJunkAndFiltersByNetwork) {
  TempDir d("cni-cache");
  ResultCache cache(d.path());
  cache.put({"net1", "a", "eth0", "", "{}", {}, json::object(), nullptr});
  cache.put({"net1", "b", "eth1", "", "{}", {}, json::object(), nullptr});
  cache.put({"net10", "c", "eth0", "", "{}", {}, json::object(), nullptr});
  write_file(d.path() + "/results/net1-junk-eth0", "not json");
  EXPECT_EQ(cache.list().size(), 3u);
  auto net1 = cache.list("net1");
  ASSERT_EQ(net1.size(), 2u);
  EXPECT_EQ(net1[0].container_id, "a");
  EXPECT_EQ(net1[1].ifname, "eth1");
  cache.remove("net1", "a", "eth0");
  cache.remove("net1", "a", "eth0"); // idempotent
  EXPECT_EQ(cache.list("net1").size(), 1u);
}

TEST(Cache, DecodesEntriesWrittenByLibcni) {
  // As libcni 1.1 writes it (Go marshals []byte as base64).
  std::string file = R"({"kind":"cniCacheV1","containerId":"x1","config":"eyJuYW1lIjoibiJ9","ifName":"eth0",)"
                     R"("networkName":"n","netns":"/proc/1/ns/net","result":{"cniVersion":"1.0.0"}})";
  auto a = decode_cache_entry(file, "f");
  EXPECT_EQ(a.config, R"({"name":"n"})");
  EXPECT_EQ(a.netns, "/proc/1/ns/net");
  EXPECT_THROW(decode_cache_entry(R"({"kind":"other"})", "f"), Error);
}
