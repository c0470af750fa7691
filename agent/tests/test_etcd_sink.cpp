// The etcd sink's config (keys, errors, round trip), its key names (DNS-1123 checks, event
// keys in time order, a prefix's range end), which errors move to the next endpoint, and
// against endpoints that do not answer: a retry naming every endpoint within the timeout,
// and abort() ending a call in flight. The protocol against a real etcd cluster is
// tests/agent/test_status_sink_etcd.py.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "agent/lib/config.hpp"
#include "agent/lib/sinks/etcd_sink.hpp"
#include "agent/tests/sink_test_config.hpp"
#include "common/error.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;

namespace {

std::string etcd_error(const std::string& keys) {
  return config_error("statusSinks:\n- name: e\n  type: etcd\n" + keys);
}

nlohmann::json pod(const std::string& ns, const std::string& name) {
  return {{"metadata", {{"namespace", ns}, {"name", name}}}};
}

// A loopback TCP port: listening (connections wait in the kernel's backlog and nothing ever
// answers) or only bound (connections are refused).
struct LoopbackPort {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int port = 0;
  explicit LoopbackPort(bool listening) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (listening) {
      EXPECT_EQ(::listen(fd, 16), 0);
    }
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~LoopbackPort() { ::close(fd); }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", port); }
};

SinkItem node_item() {
  SinkItem i;
  i.kind = SinkItem::Kind::node;
  i.key = "n1";
  i.object = std::make_shared<const nlohmann::json>(nlohmann::json{{"kind", "Node"}});
  return i;
}

SinkConfig etcd_config(std::vector<std::string> endpoints, std::chrono::milliseconds timeout) {
  SinkConfig c;
  c.name = "e";
  c.type = std::string_view("etcd");
  c.endpoints = std::move(endpoints);
  c.timeout = timeout;
  return c;
}

} // namespace

TEST(EtcdSinkConfig, ParsesDefaultsAndRoundTrips) {
  auto c = config_from_yaml(R"(apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
statusSinks:
- name: cluster
  type: etcd
  endpoints: [http://10.0.0.1:2379, "http://[fd00::2]:2379", http://etcd-3.example:2379]
- name: other
  type: etcd
  endpoints: [http://127.0.0.1:2379]
  prefix: /site-a/berth
  leaseTTL: 30s
  timeout: 2s
  maxBackoff: 5s
)",
                            "cfg.yaml");
  ASSERT_EQ(c.status_sinks.size(), 2u);
  auto& d = c.status_sinks[0];
  EXPECT_EQ(d.endpoints.size(), 3u);
  EXPECT_EQ(d.prefix, "/berth");
  EXPECT_EQ(d.lease_ttl, 10s);
  EXPECT_EQ(d.timeout, 5s);
  auto& o = c.status_sinks[1];
  EXPECT_EQ(o.prefix, "/site-a/berth");
  EXPECT_EQ(o.lease_ttl, 30s);
  EXPECT_EQ(o.timeout, 2s);
  EXPECT_EQ(EtcdSink(o, "n1").keepalive_period(), 10s); // every TTL/3
  finalize_config(c);
  auto back = config_from_yaml(config_to_yaml(c), "printed");
  EXPECT_EQ(back.status_sinks, c.status_sinks);
}

TEST(EtcdSinkConfig, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(etcd_error(""), "cfg.yaml:4: statusSinks[0].endpoints: required for an etcd sink");
  EXPECT_EQ(etcd_error("  endpoints: [http://a:2379]\n  urls: [http://a/]\n"),
            "cfg.yaml:7: statusSinks[0].urls: unknown key for a etcd sink (a typo?)");
  EXPECT_EQ(etcd_error("  endpoints: [http://a]\n"),
            "cfg.yaml:6: statusSinks[0].endpoints: \"http://a\": must be http://host:port");
  EXPECT_EQ(etcd_error("  endpoints: [http://a:2379/v3]\n"),
            "cfg.yaml:6: statusSinks[0].endpoints: \"http://a:2379/v3\": must be http://host:port");
  EXPECT_EQ(etcd_error("  endpoints: [http://a:99999]\n"),
            "cfg.yaml:6: statusSinks[0].endpoints: \"http://a:99999\": must be http://host:port");
  EXPECT_EQ(etcd_error("  endpoints: [\"http://[::1]\"]\n"),
            "cfg.yaml:6: statusSinks[0].endpoints: \"http://[::1]\": must be http://host:port");
  auto e = etcd_error("  endpoints: [https://a:2379]\n");
  EXPECT_EQ(e.rfind("cfg.yaml:6: statusSinks[0].endpoints: \"https://a:2379\": https is not supported", 0), 0u) << e;
  EXPECT_EQ(etcd_error("  endpoints: [grpc://a:2379]\n"),
            "cfg.yaml:6: statusSinks[0].endpoints: \"grpc://a:2379\": must start with http:// or https://");
  EXPECT_EQ(etcd_error("  endpoints: []\n"), "cfg.yaml:6: statusSinks[0].endpoints: must list 1-16 endpoints");
  for (auto bad : {"berth", "/", "/a//b", "/a/../b", "/a/", "/a b", "/ä"}) {
    e = etcd_error(fmt::format("  endpoints: [http://a:2379]\n  prefix: \"{}\"\n", bad));
    EXPECT_EQ(e.rfind("cfg.yaml:7: statusSinks[0].prefix: ", 0), 0u) << bad << ": " << e;
  }
  EXPECT_EQ(etcd_error("  endpoints: [http://a:2379]\n  leaseTTL: 1s\n"),
            "cfg.yaml:7: statusSinks[0].leaseTTL: 1s: must be whole seconds, 2s-1h");
  EXPECT_EQ(etcd_error("  endpoints: [http://a:2379]\n  leaseTTL: 2500ms\n"),
            "cfg.yaml:7: statusSinks[0].leaseTTL: 2500ms: must be whole seconds, 2s-1h");
  EXPECT_EQ(etcd_error("  endpoints: [http://a:2379]\n  caFile: /etc/ca.pem\n"),
            "cfg.yaml:7: statusSinks[0].caFile: unknown key for a etcd sink (a typo?)");
  e = etcd_error("  endpoints: [http://a:2379]\n  timeout: 0s\n");
  EXPECT_EQ(e.rfind("cfg.yaml:7: statusSinks[0].timeout", 0), 0u) << e;
}

TEST(EtcdSinkKeys, PodKeysOnlyFromDns1123Names) {
  EXPECT_EQ(etcd_pod_key("/berth", "n1", pod("default", "web-n1")), "/berth/pods/n1/default/web-n1");
  EXPECT_EQ(etcd_pod_key("/a/b", "node.example.com", pod("kube-system", "x")), "/a/b/pods/node.example.com/kube-system/x");
  for (auto [node, ns, name] : {std::tuple{"n1", "default", "a/b"}, {"n1", "..", "a"}, {"n1", "default", "A"},
                                {"n/1", "default", "a"}, {"", "default", "a"}, {"n1", "", "a"}, {"n1", "default", ""},
                                {"n1", "default", "a\nb"}, {"n1", "default", "-a"}})
    EXPECT_EQ(etcd_pod_key("/berth", node, pod(ns, name)), "") << node << " " << ns << " " << name;
  EXPECT_EQ(etcd_pod_key("/berth", "n1", nlohmann::json::object()), "");
  EXPECT_EQ(etcd_pod_key("/berth", "n1", {{"metadata", "x"}}), "");
  EXPECT_EQ(etcd_pod_key("/berth", "n1", {{"metadata", {{"namespace", 1}, {"name", "a"}}}}), "");
}

TEST(EtcdSinkKeys, EventKeysSortInTimeOrderAndPrefixEnds) {
  auto a = etcd_event_key("/berth", "n1", 999'999'999, 7), b = etcd_event_key("/berth", "n1", 1'000'000'000, 3);
  EXPECT_EQ(a, "/berth/events/n1/00000000000999999999-000007");
  EXPECT_LT(a, b);
  EXPECT_LT(etcd_event_key("/berth", "n1", 5, 1), etcd_event_key("/berth", "n1", 5, 2));
  EXPECT_EQ(etcd_prefix_end("/berth/pods/n1/"), "/berth/pods/n10");
  EXPECT_EQ(etcd_prefix_end(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(etcd_prefix_end(""), std::string(1, '\0'));
}

TEST(EtcdSinkFailover, UnreachableSlowOrLeaderlessMovesOn) {
  EXPECT_TRUE(etcd_try_next_endpoint({grpc::StatusCode::UNAVAILABLE, "connection refused"}));
  EXPECT_TRUE(etcd_try_next_endpoint({grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"}));
  EXPECT_TRUE(etcd_try_next_endpoint({grpc::StatusCode::UNKNOWN, "etcdserver: leader changed"}));
  EXPECT_TRUE(etcd_try_next_endpoint({grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader"}));
  EXPECT_FALSE(etcd_try_next_endpoint(grpc::Status::OK));
  EXPECT_FALSE(etcd_try_next_endpoint({grpc::StatusCode::NOT_FOUND, "etcdserver: requested lease not found"}));
  EXPECT_FALSE(etcd_try_next_endpoint({grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large"}));
  EXPECT_FALSE(etcd_try_next_endpoint({grpc::StatusCode::CANCELLED, "aborted"}));
}

TEST(EtcdSink, NoEndpointAnswersIsARetryNamingEachWithinTheTimeout) {
  LoopbackPort closed(false), silent(true);
  auto a = closed.url(), b = silent.url();
  EtcdSink sink(etcd_config({a, b}, 500ms), "n1");
  auto t0 = std::chrono::steady_clock::now();
  auto d = sink.deliver(node_item());
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(d.outcome, Delivery::Outcome::retry);
  EXPECT_NE(d.error.find(a + ": "), std::string::npos) << d.error;
  EXPECT_NE(d.error.find(b + ": "), std::string::npos) << d.error;
  EXPECT_LT(took, 3s); // one timeout for the silent one, at once for the refused one
}

TEST(EtcdSink, AbortEndsACallInFlight) {
  LoopbackPort silent(true);
  EtcdSink sink(etcd_config({silent.url()}, 60s), "n1");
  auto t0 = std::chrono::steady_clock::now();
  auto result = std::async(std::launch::async, [&] { return sink.deliver(node_item()); });
  std::this_thread::sleep_for(300ms);
  sink.abort();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(result.get().outcome, Delivery::Outcome::retry);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(sink.deliver(node_item()).outcome, Delivery::Outcome::retry); // and stays aborted
}

TEST(EtcdSink, InvalidNodeNameIsRejectedNotRetried) {
  LoopbackPort closed(false);
  EtcdSink sink(etcd_config({closed.url()}, 500ms), "Bad/Node");
  EXPECT_EQ(sink.deliver(node_item()).outcome, Delivery::Outcome::rejected);
}
