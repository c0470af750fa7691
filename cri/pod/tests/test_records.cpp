// Records survive a round trip through SQLite; names stay unique; exit files and CNI
// results parse as the shim and the plugins write them.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "common/error.hpp"
#include "cri/pod/pod_network.hpp"
#include "cri/pod/record_store.hpp"
#include "cri/pod/shim_client.hpp"
#include "tests/support/temp_dir.hpp"

namespace berth::cri {
namespace {

using test_support::TempDir;

SandboxRecord sample_sandbox(const std::string& id, const std::string& name) {
  SandboxRecord s;
  s.id = id;
  s.name = name;
  s.phase = SandboxPhase::ready;
  s.created_ns = 1234;
  s.config.mutable_metadata()->set_name("web");
  s.config.mutable_metadata()->set_uid("uid-1");
  (*s.config.mutable_labels())["app"] = "web";
  s.netns = "/run/berthd/sandboxes/" + id + "/ns/net";
  s.ip = "10.1.0.2";
  s.additional_ips = {"fd00::2"};
  s.cni_network = "pods";
  s.pause_pid = 42;
  return s;
}

TEST(RecordStore, RoundTripsSandboxesAndContainers) {
  TempDir dir;
  auto path = dir.path() + "/runtime.db";
  {
    auto store = RecordStore::open(path);
    store->put(sample_sandbox("s1", "web_default_uid-1_0"));
    ContainerRecord c;
    c.id = "c1";
    c.sandbox_id = "s1";
    c.name = "app_web_default_uid-1_0";
    c.phase = ContainerPhase::exited;
    c.config.mutable_metadata()->set_name("app");
    c.config.add_command("/bin/sh");
    c.exit_code = 137;
    c.reason = "OOMKilled";
    c.finished_ns = 99;
    c.message = std::string("bad utf-8 \xff here");
    store->put(c);
  }
  auto store = RecordStore::open(path);
  auto loaded = store->load();
  ASSERT_EQ(loaded.sandboxes.size(), 1u);
  ASSERT_EQ(loaded.containers.size(), 1u);
  EXPECT_TRUE(loaded.errors.empty());
  const auto& s = loaded.sandboxes[0];
  EXPECT_EQ(s.phase, SandboxPhase::ready);
  EXPECT_EQ(s.config.metadata().uid(), "uid-1");
  EXPECT_EQ(s.config.labels().at("app"), "web");
  EXPECT_EQ(s.ip, "10.1.0.2");
  EXPECT_EQ(s.additional_ips, std::vector<std::string>{"fd00::2"});
  EXPECT_EQ(s.pause_pid, 42);
  const auto& c = loaded.containers[0];
  EXPECT_EQ(c.phase, ContainerPhase::exited);
  EXPECT_EQ(c.exit_code, 137);
  EXPECT_EQ(c.reason, "OOMKilled");
  EXPECT_EQ(c.config.command(0), "/bin/sh");
  EXPECT_EQ(c.finished_ns, 99);
}

TEST(RecordStore, NameIsUniqueAndRemoveFreesIt) {
  TempDir dir;
  auto store = RecordStore::open(dir.path() + "/runtime.db");
  store->put(sample_sandbox("s1", "same"));
  try {
    store->put(sample_sandbox("s2", "same"));
    FAIL() << "a second record with the same name was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EEXIST);
  }
  store->remove_sandbox("s1");
  store->put(sample_sandbox("s2", "same"));
  EXPECT_EQ(store->load().sandboxes.size(), 1u);
}

TEST(RecordStore, UnreadableRowIsReportedForCleanup) {
  TempDir dir;
  auto store = RecordStore::open(dir.path() + "/runtime.db");
  SandboxRecord s = sample_sandbox("s1", "n1");
  store->put(s);
  // Corrupt the data column behind the store's back.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() + "/runtime.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE sandboxes SET data='{'", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto loaded = RecordStore::open(dir.path() + "/runtime.db")->load();
  ASSERT_EQ(loaded.sandboxes.size(), 1u);
  EXPECT_EQ(loaded.sandboxes[0].phase, SandboxPhase::creating);
  EXPECT_FALSE(loaded.errors.empty());
}

TEST(ExitRecord, ParsesTheShimsExitFile) {
  auto e = parse_exit_record(R"({"exit_code":137,"signal":9,"oom_killed":true,"exited_at":"2026-11-26T17:07:19.318977808Z"})",
                             "x");
  EXPECT_EQ(e.exit_code, 137);
  EXPECT_EQ(e.signal, 9);
  EXPECT_TRUE(e.oom_killed);
  EXPECT_EQ(e.exited_ns, 1795712839318977808LL);
  EXPECT_THROW(parse_exit_record("{\"exit_code\":\"x\"}", "file"), Error);
  EXPECT_THROW(parse_exit_record("garbage", "file"), Error);
}

TEST(PodNetwork, ResultIpsSkipHostInterfaces) {
  auto r = cni::json::parse(R"({"cniVersion":"1.0.0",
    "interfaces":[{"name":"cni0"},{"name":"vethX"},{"name":"eth0","sandbox":"/run/netns/x"}],
    "ips":[{"address":"10.22.0.1/16","interface":0},{"address":"10.22.0.5/16","interface":2},
           {"address":"fd00::5/64","interface":2}]})");
  EXPECT_EQ(PodNetwork::result_ips(r), (std::vector<std::string>{"10.22.0.5", "fd00::5"}));
  auto old = cni::json::parse(R"({"cniVersion":"0.2.0","ip4":{"ip":"10.1.2.3/24"}})");
  EXPECT_EQ(PodNetwork::result_ips(old), std::vector<std::string>{"10.1.2.3"});
  EXPECT_TRUE(PodNetwork::result_ips(cni::json("x")).empty());
}

} // namespace
} // namespace berth::cri
