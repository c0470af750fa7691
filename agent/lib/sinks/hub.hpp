// The status sinks berthlet's config names, fed from the status store (pod snapshots,
// deletions, events) and the node status thread. Each sink has its own SinkRunner; the
// hub only copies one shared item into each runner's queue.
#pragma once

#include <memory>
#include <vector>

#include "agent/lib/config.hpp"
#include "agent/lib/sinks/runner.hpp"
#include "agent/lib/status.hpp"

namespace berth::agent {

// The sink of one config entry (file, http, etcd) on node node_name.
std::unique_ptr<StatusSink> make_sink(const SinkConfig& config, const std::string& node_name);

class StatusSinks final : public StatusObserver {
public:
  explicit StatusSinks(const Config& config);
  ~StatusSinks() override; // shutdown(0) if not done
  bool empty() const { return runners_.empty(); }

  void pod_changed(const std::string& uid, const nlohmann::json& pod) override;
  void pod_removed(const std::string& uid, const nlohmann::json& last) override;
  void event(const EventInfo& e) override;
  void node_changed(nlohmann::json node);
  // Every pod berthlet runs ({namespace, name, uid} each): a pod_set item.
  void pods_running(nlohmann::json pods);
  // The final flush: every sink delivers what it can within flush, in parallel.
  void shutdown(std::chrono::milliseconds flush);

private:
  void put_state(SinkItem::Kind kind, const std::string& key, nlohmann::json object);
  std::string node_name_;
  std::vector<std::unique_ptr<SinkRunner>> runners_;
};

} // namespace berth::agent
