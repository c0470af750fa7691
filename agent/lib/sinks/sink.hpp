// berthlet's status sinks (docs/agent.md "Status sinks"): where the node's status, every
// pod's status and berthlet's events are reported besides the local status endpoint.
// A sink only knows how to deliver one item to its endpoint; the SinkRunner in front of
// it (runner.hpp) keeps what is not delivered yet, coalesced per key, and retries.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace berth::agent {

struct SinkItem {
  using Clock = std::chrono::steady_clock;
  // node: a v1 Node; pod: a v1 Pod; pod_deleted: {"metadata":{namespace,name,uid}};
  // event: a v1 Event; pod_set: {"node":name,"pods":[{namespace,name,uid},...]}, every pod
  // berthlet runs, sent once after the first manifest scan, so that a sink removes what it
  // still holds of pods deleted while berthlet was down. Wire names: node, pod, podDeleted, event, podSet.
  enum class Kind { node, pod, pod_deleted, event, pod_set };
  Kind kind = Kind::pod;
  std::string key; // node, pod_set: the node name; pod and pod_deleted: the pod UID; event: ""
  // Shared by every sink's queue: one copy of a pod's JSON however many sinks there are.
  std::shared_ptr<const nlohmann::json> object;
  Clock::time_point changed{}; // the oldest change this item carries (delivery lag)
  uint64_t version = 0;        // the queue's: a newer state of the same key has a higher one
};

const char* kind_name(SinkItem::Kind k);

// {"kind":"pod","object":{...}}: one webhook or directory receives all kinds.
nlohmann::json envelope(const SinkItem& item);

struct Delivery {
  // delivered: done. retry: the endpoint is unreachable, slow or failing (5xx, 408, 429,
  // ENOSPC): kept and retried with back-off. rejected: the endpoint refuses this item for
  // good (4xx): logged once and dropped, never retried forever.
  enum class Outcome { delivered, retry, rejected } outcome = Outcome::delivered;
  std::string error; // why, for retry and rejected
  static Delivery ok() { return {}; }
  static Delivery retry(std::string why) { return {Outcome::retry, std::move(why)}; }
  static Delivery rejected(std::string why) { return {Outcome::rejected, std::move(why)}; }
};

// One endpoint (a directory, a set of URLs, an etcd cluster, an API server). Called from
// its runner's thread only; each call must end in bounded time (its own timeouts).
class StatusSink {
public:
  virtual ~StatusSink() = default;
  // Delivers the latest state of item.key (or one event). Failover between several
  // endpoints is the sink's own business: return retry only when none took it.
  virtual Delivery deliver(const SinkItem& item) = 0;
  // Called from another thread when the final flush at shutdown runs out of time: makes a
  // delivery in progress end soon (as a retry), so that shutdown is bounded.
  virtual void abort() {}
  // For sinks whose liveness is a lease (etcd, the Node Lease): called every
  // keepalive_period() while the runner is idle or between deliveries; 0 = never.
  virtual std::chrono::milliseconds keepalive_period() const { return std::chrono::milliseconds(0); }
  virtual Delivery keepalive() { return Delivery::ok(); }
};

} // namespace berth::agent
