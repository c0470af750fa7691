// Status sinks: the per-sink queue (coalescing, bounded events), the back-off, the file
// sink's atomic writes and names, the http sink's response classes, the statusSinks
// config and its errors, the node conditions' thresholds, and a runner against a sink
// that fails and recovers.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "agent/lib/config.hpp"
#include "agent/lib/node_status.hpp"
#include "agent/lib/sinks/file_sink.hpp"
#include "agent/lib/sinks/http_sink.hpp"
#include "agent/lib/sinks/queue.hpp"
#include "agent/lib/sinks/runner.hpp"
#include "agent/tests/sink_test_config.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;

namespace {

SinkItem pod(const std::string& uid, int version, SinkItem::Kind kind = SinkItem::Kind::pod) {
  SinkItem i;
  i.kind = kind;
  i.key = uid;
  i.object = std::make_shared<const nlohmann::json>(nlohmann::json{
      {"metadata", {{"namespace", "default"}, {"name", "p-" + uid}, {"uid", uid}}}, {"v", version}});
  i.changed = SinkItem::Clock::now();
  return i;
}

SinkItem event(int n) {
  SinkItem i;
  i.kind = SinkItem::Kind::event;
  i.object = std::make_shared<const nlohmann::json>(nlohmann::json{{"n", n}});
  return i;
}

SinkConfig file_sink_config(const std::string& dir) {
  SinkConfig c;
  c.name = "f";
  c.type = std::string_view("file"); // not operator=(const char*): GCC 12's -Wrestrict misreads it here
  c.directory = dir;
  return c;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/berth-sinks-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

} // namespace

TEST(SinkQueue, NewerStateReplacesUndeliveredOlderOneInPlace) {
  SinkQueue q(10);
  auto first = pod("a", 1);
  q.put_state(first);
  q.put_state(pod("b", 1));
  q.put_state(pod("a", 2)); // replaces a's first snapshot, keeps a ahead of b
  EXPECT_EQ(q.depth(), 2u);
  auto f = q.front();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->key, "a");
  EXPECT_EQ(f->object->at("v"), 2);
  EXPECT_LE(f->changed, first.changed + 0s); // the lag counts from the first undelivered change
  q.done(*f);
  EXPECT_EQ(q.front()->key, "b");
}

TEST(SinkQueue, DeletionReplacesSnapshotAndDeliveryOfAReplacedStateKeepsTheNewOne) {
  SinkQueue q(10);
  q.put_state(pod("a", 1));
  auto taken = *q.front(); // being delivered...
  q.put_state(pod("a", 0, SinkItem::Kind::pod_deleted)); // ...when the pod goes away
  q.done(taken);                                           // the old snapshot was delivered
  ASSERT_EQ(q.depth(), 1u);                                // the deletion is still owed
  EXPECT_EQ(q.front()->kind, SinkItem::Kind::pod_deleted);
  q.done(*q.front());
  EXPECT_TRUE(q.empty());
}

TEST(SinkQueue, EventsAreBoundedDroppingTheOldest) {
  SinkQueue q(3);
  for (int i = 0; i < 5; i++) q.put_event(event(i));
  EXPECT_EQ(q.depth(), 3u);
  EXPECT_EQ(q.events_dropped(), 2u);
  EXPECT_EQ(q.front()->object->at("n"), 2);
  q.put_state(pod("a", 1)); // after the events in line
  for (int want : {2, 3, 4}) {
    auto f = q.front();
    EXPECT_EQ(f->object->at("n"), want);
    q.done(*f);
  }
  EXPECT_EQ(q.front()->key, "a");
}

TEST(DeliveryBackoff, DoublesJitteredAndBounded) {
  DeliveryBackoff b(100ms, 1000ms);
  std::vector<int64_t> waits;
  for (int i = 0; i < 8; i++) waits.push_back(b.next().count());
  EXPECT_GE(waits[0], 80);
  EXPECT_LE(waits[0], 100);
  EXPECT_GE(waits[1], 160);
  EXPECT_LE(waits[1], 200);
  for (auto w : waits) EXPECT_LE(w, 1000);
  EXPECT_GE(waits[7], 800);
  b.reset();
  EXPECT_LE(b.next().count(), 100);
}

TEST(FileSink, WritesAtomicallyAndDeletesValidatedNames) {
  TempDir tmp;
  auto c = file_sink_config(tmp.path + "/status");
  FileSink sink(c);
  ASSERT_EQ(sink.deliver(pod("u1", 1)).outcome, Delivery::Outcome::delivered);
  auto file = c.directory + "/pods/default_p-u1.json";
  EXPECT_EQ(nlohmann::json::parse(berth::read_file(file)).at("v"), 1);
  ASSERT_EQ(sink.deliver(pod("u1", 2)).outcome, Delivery::Outcome::delivered);
  EXPECT_EQ(nlohmann::json::parse(berth::read_file(file)).at("v"), 2);
  // No temp file is left beside it.
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(c.directory + "/pods")) n += !e.path().empty();
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(sink.deliver(pod("u1", 0, SinkItem::Kind::pod_deleted)).outcome, Delivery::Outcome::delivered);
  EXPECT_FALSE(berth::path_exists(file));
  // A name that would make a path elsewhere is refused, nothing is written.
  SinkItem evil = pod("u2", 1);
  evil.object = std::make_shared<const nlohmann::json>(
      nlohmann::json{{"metadata", {{"namespace", ".."}, {"name", "../../etc/x"}}}});
  EXPECT_EQ(sink.deliver(evil).outcome, Delivery::Outcome::rejected);
  EXPECT_EQ(pod_file_name(*evil.object), "");
}

TEST(FileSink, PodSetRemovesOnlyTheFilesOfPodsThatAreGone) {
  TempDir tmp;
  auto c = file_sink_config(tmp.path + "/status");
  FileSink sink(c);
  for (auto* uid : {"u1", "u2"}) ASSERT_EQ(sink.deliver(pod(uid, 1)).outcome, Delivery::Outcome::delivered);
  berth::write_file_atomic(c.directory + "/pods/not-a-pod.txt", "x"); // not the sink's: kept
  SinkItem set;
  set.kind = SinkItem::Kind::pod_set;
  set.key = "node1";
  set.object = std::make_shared<const nlohmann::json>(nlohmann::json{
      {"node", "node1"}, {"pods", {{{"namespace", "default"}, {"name", "p-u2"}, {"uid", "u2"}}}}});
  ASSERT_EQ(sink.deliver(set).outcome, Delivery::Outcome::delivered);
  EXPECT_FALSE(berth::path_exists(c.directory + "/pods/default_p-u1.json"));
  EXPECT_TRUE(berth::path_exists(c.directory + "/pods/default_p-u2.json"));
  EXPECT_TRUE(berth::path_exists(c.directory + "/pods/not-a-pod.txt"));
}

TEST(FileSink, DeletionOfAnOlderPodOfTheSameNameLeavesTheNewerOnesFile) {
  TempDir tmp;
  auto c = file_sink_config(tmp.path + "/status");
  FileSink sink(c);
  auto old_pod = pod("u1", 1), new_pod = pod("u1", 2);
  new_pod.key = "u1-changed"; // the same namespace and name, another UID (a changed manifest)
  ASSERT_EQ(sink.deliver(old_pod).outcome, Delivery::Outcome::delivered);
  ASSERT_EQ(sink.deliver(new_pod).outcome, Delivery::Outcome::delivered);
  ASSERT_EQ(sink.deliver(pod("u1", 0, SinkItem::Kind::pod_deleted)).outcome, Delivery::Outcome::delivered);
  auto file = c.directory + "/pods/default_p-u1.json";
  ASSERT_TRUE(berth::path_exists(file));
  EXPECT_EQ(nlohmann::json::parse(berth::read_file(file)).at("v"), 2);
}

TEST(FileSink, UnwritableDirectoryIsRetriedNotDropped) {
  TempDir tmp;
  auto c = file_sink_config(tmp.path + "/file-not-dir");
  berth::write_file_atomic(c.directory, "x");
  FileSink sink(c);
  auto d = sink.deliver(pod("u1", 1));
  EXPECT_EQ(d.outcome, Delivery::Outcome::retry);
  EXPECT_NE(d.error.find(c.directory), std::string::npos) << d.error;
}

TEST(HttpSink, ResponsesAreDeliveredRetriedOrRejected) {
  EXPECT_EQ(HttpSink::classify(200), Delivery::Outcome::delivered);
  EXPECT_EQ(HttpSink::classify(204), Delivery::Outcome::delivered);
  for (long s : {408L, 429L, 500L, 502L, 503L}) EXPECT_EQ(HttpSink::classify(s), Delivery::Outcome::retry) << s;
  for (long s : {400L, 401L, 403L, 404L, 413L}) EXPECT_EQ(HttpSink::classify(s), Delivery::Outcome::rejected) << s;
}

TEST(SinkConfig, ParsesBothTypesAndRoundTrips) {
  auto c = config_from_yaml(R"(apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
nodeStatusUpdateFrequency: 2s
statusSinks:
- name: local
  type: file
  directory: /run/berthlet/status
- name: hook
  type: http
  urls: [http://127.0.0.1:9000/status, "https://h.example:9001/status"]
  method: PUT
  timeout: 3s
  bearerTokenFile: /etc/berth/hook.token
  maxBackoff: 10s
  maxQueuedEvents: 50
)",
                            "cfg.yaml");
  ASSERT_EQ(c.status_sinks.size(), 2u);
  EXPECT_EQ(c.node_status_update_frequency, 2s);
  EXPECT_EQ(c.status_sinks[0].directory, "/run/berthlet/status");
  EXPECT_EQ(c.status_sinks[1].urls.size(), 2u);
  EXPECT_EQ(c.status_sinks[1].method, "PUT");
  EXPECT_EQ(c.status_sinks[1].timeout, 3s);
  EXPECT_EQ(c.status_sinks[1].max_backoff, 10s);
  EXPECT_EQ(c.status_sinks[1].max_queued_events, 50u);
  finalize_config(c);
  auto back = config_from_yaml(config_to_yaml(c), "printed");
  EXPECT_EQ(back.status_sinks, c.status_sinks);
}

TEST(SinkConfig, ErrorsNameFileLineAndKey) {
  auto e = config_error("statusSinks:\n- name: a\n  type: flie\n  directory: /x\n");
  EXPECT_EQ(e, "cfg.yaml:5: statusSinks[0].type: \"flie\": unknown sink type (file, http, etcd or kubernetes)");
  e = config_error("statusSinks:\n- name: a\n  type: file\n  directroy: /x\n");
  EXPECT_EQ(e, "cfg.yaml:6: statusSinks[0].directroy: unknown key for a file sink (a typo?)");
  e = config_error("statusSinks:\n- name: a\n  type: file\n  directory: /x\n- name: b\n  type: http\n"
                   "  urls: [ftp://x/]\n");
  EXPECT_EQ(e, "cfg.yaml:9: statusSinks[1].urls: \"ftp://x/\": must start with http:// or https://");
  e = config_error("statusSinks:\n- name: a\n  type: http\n  urls: [\"http://x/a b\"]\n");
  EXPECT_NE(e.find("cfg.yaml:6: statusSinks[0].urls:"), std::string::npos) << e;
  e = config_error("statusSinks:\n- name: a\n  type: file\n  directory: rel/dir\n");
  EXPECT_EQ(e, "cfg.yaml:6: statusSinks[0].directory: \"rel/dir\": must be an absolute path");
  e = config_error("statusSinks:\n- name: a\n  type: file\n  directory: /x\n- name: a\n  type: file\n  directory: /y\n");
  EXPECT_EQ(e, "cfg.yaml:7: statusSinks[1].name: \"a\": used by an earlier sink");
  e = config_error("statusSinks:\n- name: a\n  type: http\n  urls: [http://x/]\n  method: GET\n");
  EXPECT_EQ(e, "cfg.yaml:7: statusSinks[0].method: \"GET\": must be POST or PUT");
  e = config_error("statusSinks:\n- name: a\n  type: http\n");
  EXPECT_EQ(e, "cfg.yaml:4: statusSinks[0].urls: required for an http sink");
  e = config_error("statusSinks:\n- file\n");
  EXPECT_EQ(e, "cfg.yaml:4: statusSinks[0]: must be a mapping with name, type and the type's keys");
  e = config_error("statusSinks: {name: a}\n");
  EXPECT_EQ(e, "cfg.yaml:3: statusSinks: must be a list");
}

TEST(NodeStatus, PressureThresholdsAreTheKubeletDefaults) {
  HostStats s;
  s.memory_total = 8ull << 30;
  s.memory_available = 2ull << 30;
  s.fs_total = 100ull << 30;
  s.fs_available = 50ull << 30;
  s.inodes_total = 1000;
  s.inodes_free = 900;
  s.pid_max = 1000;
  s.pids_used = 100;
  auto p = evaluate_pressure(s);
  EXPECT_FALSE(p.memory || p.disk || p.pid);
  s.memory_available = 99ull << 20;
  s.fs_available = 9ull << 30;
  s.pids_used = 950;
  p = evaluate_pressure(s);
  EXPECT_TRUE(p.memory && p.disk && p.pid);
  s.fs_available = 50ull << 30;
  s.inodes_free = 40; // < 5 %
  EXPECT_TRUE(evaluate_pressure(s).disk);
}

TEST(NodeStatus, BuildsANodeFromTheHost) {
  Config c;
  c.node_name = "n1";
  c.root_dir = "/";
  NodeStatusBuilder b(c, "10.0.0.5");
  auto node = b.build(read_host_stats("/"), {"containerd", "1.7.0", true, ""}, "2026-01-01T00:00:00Z");
  auto& st = node.at("status");
  EXPECT_EQ(node.at("metadata").at("name"), "n1");
  EXPECT_GT(std::stol(st.at("capacity").at("cpu").get<std::string>()), 0);
  EXPECT_EQ(st.at("nodeInfo").at("containerRuntimeVersion"), "containerd://1.7.0");
  EXPECT_EQ(st.at("addresses").at(0).at("address"), "10.0.0.5");
  ASSERT_EQ(st.at("conditions").size(), 4u);
  EXPECT_EQ(st.at("conditions").at(3).at("type"), "Ready");
  EXPECT_EQ(st.at("conditions").at(3).at("status"), "True");
  // The transition time stays until the status changes.
  auto later = b.build(read_host_stats("/"), {"containerd", "1.7.0", true, ""}, "2026-01-01T00:01:00Z");
  EXPECT_EQ(later.at("status").at("conditions").at(3).at("lastTransitionTime"), "2026-01-01T00:00:00Z");
  auto down = b.build(read_host_stats("/"), {"containerd", "1.7.0", false, "runtime down"}, "2026-01-01T00:02:00Z");
  EXPECT_EQ(down.at("status").at("conditions").at(3).at("lastTransitionTime"), "2026-01-01T00:02:00Z");
  EXPECT_EQ(down.at("status").at("conditions").at(3).at("message"), "runtime down");
}

namespace {
// A sink that fails until told otherwise, and records what it was given.
class FlakySink final : public StatusSink {
public:
  std::atomic<bool> up{false};
  std::atomic<int> attempts{0};
  std::mutex mu;
  std::map<std::string, int> got;
  Delivery deliver(const SinkItem& item) override {
    attempts++;
    if (!up) return Delivery::retry("down");
    std::lock_guard lock(mu);
    got[item.key] = item.kind == SinkItem::Kind::pod_deleted ? -1 : item.object->at("v").get<int>();
    return Delivery::ok();
  }
};
} // namespace

TEST(SinkRunner, KeepsTheLatestStateWhileDownAndDeliversItWhenBack) {
  SinkConfig c;
  c.name = "flaky";
  c.initial_backoff = 10ms;
  c.max_backoff = 40ms;
  auto owned = std::make_unique<FlakySink>();
  auto* sink = owned.get();
  SinkRunner r(c, std::move(owned));
  for (int v = 1; v <= 100; v++) r.put_state(pod("a", v)); // never blocks on the dead sink
  r.put_state(pod("b", 1));
  r.put_state(pod("b", 0, SinkItem::Kind::pod_deleted));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(r.depth(), 2u);
  EXPECT_LT(sink->attempts.load(), 30); // backed off, not spinning
  sink->up = true;
  for (int i = 0; i < 100 && r.depth() > 0; i++) std::this_thread::sleep_for(10ms);
  r.stop(1s);
  EXPECT_EQ(sink->got["a"], 100);
  EXPECT_EQ(sink->got["b"], -1);
}
