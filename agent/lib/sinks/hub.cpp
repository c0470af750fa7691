#include "agent/lib/sinks/hub.hpp"

#include <atomic>
#include <thread>

#include "agent/lib/sinks/etcd_sink.hpp"
#include "agent/lib/sinks/file_sink.hpp"
#include "agent/lib/sinks/http_sink.hpp"
#include "agent/lib/sinks/kube_sink.hpp"
#include "common/error.hpp"

namespace berth::agent {

std::unique_ptr<StatusSink> make_sink(const SinkConfig& config, const std::string& node_name) {
  if (config.type == "file") return std::make_unique<FileSink>(config);
  if (config.type == "http") return std::make_unique<HttpSink>(config);
  if (config.type == "kubernetes") return std::make_unique<KubeSink>(config);
  if (config.type == "etcd") return std::make_unique<EtcdSink>(config, node_name);
  fail("status sink {}: unknown type {:?}", config.name, config.type);
}

StatusSinks::StatusSinks(const Config& config) : node_name_(config.node_name) {
  for (auto& s : config.status_sinks) runners_.push_back(std::make_unique<SinkRunner>(s, make_sink(s, node_name_)));
}

StatusSinks::~StatusSinks() { shutdown(std::chrono::milliseconds(0)); }

void StatusSinks::put_state(SinkItem::Kind kind, const std::string& key, nlohmann::json object) {
  if (runners_.empty()) return;
  SinkItem item;
  item.kind = kind;
  item.key = key;
  item.object = std::make_shared<const nlohmann::json>(std::move(object));
  item.changed = SinkItem::Clock::now();
  for (auto& r : runners_) r->put_state(item);
}

void StatusSinks::pod_changed(const std::string& uid, const nlohmann::json& pod) {
  put_state(SinkItem::Kind::pod, uid, pod);
}

void StatusSinks::pod_removed(const std::string& uid, const nlohmann::json& last) {
  auto meta = last.value("metadata", nlohmann::json::object());
  put_state(SinkItem::Kind::pod_deleted, uid,
            {{"metadata",
              {{"namespace", meta.value("namespace", "")}, {"name", meta.value("name", "")}, {"uid", uid}}}});
}

void StatusSinks::node_changed(nlohmann::json node) { put_state(SinkItem::Kind::node, node_name_, std::move(node)); }

void StatusSinks::pods_running(nlohmann::json pods) {
  put_state(SinkItem::Kind::pod_set, node_name_, {{"node", node_name_}, {"pods", std::move(pods)}});
}

void StatusSinks::event(const EventInfo& e) {
  if (runners_.empty()) return;
  static std::atomic<uint64_t> serial{0};
  auto now = k8s_time_now();
  std::string object = e.involved_object.value("name", node_name_);
  nlohmann::json ev = {{"apiVersion", "v1"},
                       {"kind", "Event"},
                       {"metadata",
                        {{"name", fmt::format("{}.{:x}{}", object, ::time(nullptr), serial++)},
                         {"namespace", e.involved_object.value("namespace", "default")}}},
                       {"involvedObject", e.involved_object},
                       {"type", e.type},
                       {"reason", e.reason},
                       {"message", e.message},
                       {"source", {{"component", "berthlet"}, {"host", node_name_}}},
                       {"firstTimestamp", now},
                       {"lastTimestamp", now},
                       {"count", 1}};
  SinkItem item;
  item.kind = SinkItem::Kind::event;
  item.object = std::make_shared<const nlohmann::json>(std::move(ev));
  item.changed = SinkItem::Clock::now();
  for (auto& r : runners_) r->put_event(item);
}

void StatusSinks::shutdown(std::chrono::milliseconds flush) {
  std::vector<std::thread> stoppers;
  for (auto& r : runners_) stoppers.emplace_back([&r, flush] { r->stop(flush); });
  for (auto& t : stoppers) t.join();
}

} // namespace berth::agent
