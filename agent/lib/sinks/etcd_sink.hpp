// The etcd sink (docs/agent.md, "etcd"): etcd v3 over gRPC (our own subset of its API in
// agent/proto/etcd). Keys under <prefix>:
//   nodes/<node>                    the v1 Node
//   alive/<node>                    bound to a lease of leaseTTL, kept alive every TTL/3
//   pods/<node>/<namespace>/<name>  the v1 Pod; removed when the pod is
//   events/<node>/<time>-<seq>      the v1 Event, bound to a shared lease of about an hour
// Every call carries a deadline (timeout) and "hasleader" (a member cut off from the
// quorum refuses rather than answering stale). The endpoint that last worked is tried
// first; an unreachable or slow member, or one without a leader, moves the call to the next
// at once, and only when none took it does the runner retry with back-off.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "agent/lib/sinks/sink.hpp"
#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

// <prefix>/pods/<node>/<namespace>/<name> for a v1 Pod (or a podDeleted object), or "" when
// the node, namespace or name is not a DNS-1123 name: no key is built from anything else.
std::string etcd_pod_key(const std::string& prefix, const std::string& node, const nlohmann::json& pod);
// <prefix>/events/<node>/<unix ns, 20 digits>-<seq, 6 digits>: keys sort in time order.
std::string etcd_event_key(const std::string& prefix, const std::string& node, uint64_t unix_ns, uint64_t seq);
// The first key after every key starting with prefix (etcd's range_end for a prefix).
std::string etcd_prefix_end(std::string prefix);
// Whether a failed call should move on to the next endpoint: the member is unreachable,
// slow, or has no leader (or just lost it).
bool etcd_try_next_endpoint(const grpc::Status& status);

class EtcdSink final : public StatusSink {
public:
  EtcdSink(SinkConfig config, std::string node_name);
  ~EtcdSink() override; // revokes the alive lease (bounded), so the node is gone at once
  Delivery deliver(const SinkItem& item) override;
  void abort() override;
  std::chrono::milliseconds keepalive_period() const override;
  Delivery keepalive() override;

private:
  struct Endpoint;
  using Call = std::function<grpc::Status(Endpoint&, grpc::ClientContext&)>;
  // Runs call at each endpoint in turn from the one that last worked, until one answers
  // (ok or an error of its own: its status is returned). When every endpoint failed over,
  // UNAVAILABLE naming each one's error.
  grpc::Status call(const Call& fn);
  grpc::Status put(const std::string& key, const std::string& value, int64_t lease);
  grpc::Status remove(const std::string& key);
  grpc::Status grant(int64_t ttl_seconds, int64_t& lease);
  Delivery put_alive(); // grants the alive lease and puts the alive key
  Delivery put_event(const SinkItem& item);
  Delivery remove_stale(const nlohmann::json& pod_set);
  Delivery delete_pod(const std::string& key, const std::string& uid);

  SinkConfig config_;
  std::string node_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  size_t preferred_ = 0;
  int64_t alive_lease_ = 0, event_lease_ = 0; // 0: none granted (or lost)
  std::chrono::steady_clock::time_point event_lease_granted_{};
  uint64_t event_seq_ = 0, event_version_ = 0;
  std::string event_key_; // the key of the event being delivered (a retry reuses it)
  std::map<std::string, std::string> uid_at_; // pod key -> UID last put there
  std::atomic<bool> aborted_{false};
  std::mutex current_mu_;
  grpc::ClientContext* current_ = nullptr; // the call in flight, for abort()
};

} // namespace berth::agent
