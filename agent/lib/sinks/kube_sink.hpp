// The kubernetes sink: berthlet's node and static pods in a Kubernetes API server, as the
// kubelet keeps them there (docs/agent.md "Status sinks"): the Node registered and its
// status patched, its Lease in kube-node-lease renewed every nodeLeaseDuration/4, a mirror
// pod per static pod (annotation kubernetes.io/config.mirror, owned by the Node) with its
// status patched through the status subresource, mirror pods of removed manifests deleted,
// deleted or outdated ones recreated, events posted.
#pragma once

#include <atomic>
#include <map>
#include <memory>

#include "agent/lib/sinks/kube_client.hpp"
#include "agent/lib/sinks/sink.hpp"
#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

class KubeSink final : public StatusSink {
public:
  explicit KubeSink(SinkConfig config);
  Delivery deliver(const SinkItem& item) override;
  void abort() override;
  std::chrono::milliseconds keepalive_period() const override { return config_.node_lease_duration / 4; }
  // Renews the Lease, then checks that every static pod still has its mirror pod (one
  // deleted through the API is recreated within a renewal period).
  Delivery keepalive() override;

private:
  KubeClient* client(std::string& error); // built at first use from the kubeconfig/keys
  Delivery deliver_node(const nlohmann::json& node);
  Delivery deliver_pod(const std::shared_ptr<const nlohmann::json>& pod);
  Delivery delete_pod(const nlohmann::json& meta);
  Delivery remove_orphans(const nlohmann::json& pod_set);
  Delivery post_event(const nlohmann::json& event);
  Delivery renew_lease();
  Delivery resync_mirror_pods();
  KubeReply list_node_pods(const std::string& node);
  // Creates the mirror pod (replacing an outdated one) unless current; sets its UID.
  Delivery ensure_mirror(const nlohmann::json& pod, const std::string& path, std::string& mirror_uid);
  Delivery patch_pod_status(const nlohmann::json& pod, const std::string& path);
  Delivery known_node(); // node_uid_ from the server when the Node exists
  // A failed call's outcome: retry (unreachable, 5xx, 429, 401/403, 409) or rejected.
  Delivery failed(const KubeReply& r);

  SinkConfig config_;
  std::unique_ptr<KubeClient> client_;
  std::string node_, node_uid_;
  nlohmann::json lease_; // as last read or written (resourceVersion for the next renewal)
  // Static pods by "<namespace>/<name>": their last state, and their mirror pod's UID.
  std::map<std::string, std::shared_ptr<const nlohmann::json>> pods_;
  std::map<std::string, std::string> mirror_uids_;
  std::atomic<KubeClient*> live_{nullptr}; // client_, for abort() from another thread
  std::atomic<bool> aborted_{false};
};

} // namespace berth::agent
