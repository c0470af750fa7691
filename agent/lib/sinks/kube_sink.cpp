#include "agent/lib/sinks/kube_sink.hpp"

#include <set>

#include <fmt/format.h>

#include "agent/lib/log.hpp"
#include "agent/lib/pod.hpp"
#include "agent/lib/sinks/kube_objects.hpp"
#include "common/error.hpp"

namespace berth::agent {
namespace {

constexpr const char* kMergePatch = "application/merge-patch+json";

std::string meta_string(const nlohmann::json& obj, const char* key, const char* fallback = "") {
  if (!obj.is_object()) return fallback;
  auto meta = obj.value("metadata", nlohmann::json::object());
  return meta.is_object() && meta.contains(key) && meta[key].is_string() ? meta[key].get<std::string>() : fallback;
}

// "/api/v1/namespaces/<ns>/pods/<name>", or "" when a name is not one the API accepts.
std::string pod_path(const std::string& ns, const std::string& name) {
  if (!valid_dns1123_label(ns) || !valid_dns1123_subdomain(name)) return "";
  return fmt::format("/api/v1/namespaces/{}/pods/{}", url_escape(ns), url_escape(name));
}

} // namespace

KubeSink::KubeSink(SinkConfig config) : config_(std::move(config)) {}

void KubeSink::abort() {
  aborted_ = true;
  if (auto* c = live_.load()) c->abort();
}

KubeClient* KubeSink::client(std::string& error) {
  if (client_) return client_.get();
  try {
    client_ = std::make_unique<KubeClient>(kube_credentials(config_), config_.timeout);
  } catch (const std::exception& e) {
    error = fmt::format("kubeconfig: {}", e.what());
    return nullptr;
  }
  live_ = client_.get();
  if (aborted_) client_->abort();
  return client_.get();
}

Delivery KubeSink::failed(const KubeReply& r) {
  // The same line for every request (the runner logs a changed error only): one line.
  if (r.status == 401 || r.status == 403)
    return Delivery::retry(fmt::format("{}: HTTP {} {}: credentials rejected (check the client certificate, key or "
                                       "token; retrying with back-off)",
                                       r.server, r.status, r.reason()));
  if (r.status == 0 || r.status == 408 || r.status == 409 || r.status == 429 || r.status >= 500)
    return Delivery::retry(r.error);
  return Delivery::rejected(r.error);
}

Delivery KubeSink::deliver(const SinkItem& item) {
  std::string error;
  if (!client(error)) return Delivery::retry(error);
  const auto& obj = *item.object;
  switch (item.kind) {
  case SinkItem::Kind::node: return deliver_node(obj);
  case SinkItem::Kind::pod: return deliver_pod(item.object);
  case SinkItem::Kind::pod_deleted: return delete_pod(obj.value("metadata", nlohmann::json::object()));
  case SinkItem::Kind::pod_set: return remove_orphans(obj);
  case SinkItem::Kind::event: return post_event(obj);
  }
  return Delivery::rejected("unknown item kind");
}

Delivery KubeSink::deliver_node(const nlohmann::json& node) {
  auto name = meta_string(node, "name");
  if (!valid_dns1123_subdomain(name)) return Delivery::rejected(fmt::format("node name {:?} is not a DNS-1123 subdomain", name));
  node_ = name;
  auto path = "/api/v1/nodes/" + url_escape(name);
  for (int attempt = 0; attempt < 2; attempt++) {
    if (node_uid_.empty()) {
      auto r = client_->call("POST", "/api/v1/nodes", node_registration(node));
      if (r.ok()) {
        node_uid_ = meta_string(r.body, "uid");
        log_info("status sink {}: node {} registered with {}", config_.name, name, client_->server());
        resync_mirror_pods(); // pods that waited for the Node
        return Delivery::ok();
      }
      if (r.status != 409) return failed(r);
      auto got = client_->call("GET", path);
      if (!got.ok()) return failed(got);
      node_uid_ = meta_string(got.body, "uid");
      resync_mirror_pods();
    }
    auto r = client_->call("PATCH", path + "/status", node_status_patch(node), kMergePatch);
    if (r.ok()) return Delivery::ok();
    if (r.status != 404) return failed(r);
    node_uid_.clear(); // the Node was deleted: register it again
  }
  return Delivery::retry("the Node keeps disappearing");
}

Delivery KubeSink::known_node() {
  if (!node_uid_.empty()) return Delivery::ok();
  if (node_.empty()) return Delivery::retry("node name not known yet");
  auto r = client_->call("GET", "/api/v1/nodes/" + url_escape(node_));
  if (r.status == 404) return Delivery::retry(fmt::format("Node {} not registered yet", node_));
  if (!r.ok()) return failed(r);
  node_uid_ = meta_string(r.body, "uid");
  return Delivery::ok();
}

Delivery KubeSink::ensure_mirror(const nlohmann::json& pod, const std::string& path, std::string& mirror_uid) {
  auto node_ok = known_node();
  if (node_ok.outcome != Delivery::Outcome::delivered) return node_ok;
  auto ns = meta_string(pod, "namespace", "default");
  auto create = [&] {
    return client_->call("POST", fmt::format("/api/v1/namespaces/{}/pods", url_escape(ns)), mirror_pod(pod, node_, node_uid_));
  };
  // Created first (a new pod's mirror pod costs one request); AlreadyExists: look at it.
  auto created = create();
  if (created.status == 409) {
    auto got = client_->call("GET", path);
    if (got.ok() && is_current_mirror_of(got.body, pod)) {
      mirror_uid = meta_string(got.body, "uid");
      return Delivery::ok();
    }
    if (got.ok()) {
      if (!is_mirror_pod(got.body))
        return Delivery::rejected(fmt::format("{}: a pod that is not a mirror pod has the static pod's name", path));
      // Outdated (the manifest changed) or being deleted: replaced, as the kubelet does.
      auto del = client_->call("DELETE", path, mirror_delete_options(meta_string(got.body, "uid")));
      if (!del.ok() && del.status != 404 && del.status != 409) return failed(del);
    } else if (got.status != 404) {
      return failed(got);
    }
    created = create(); // 409 again: the old one is still being removed; retried later
  }
  if (!created.ok()) return failed(created);
  mirror_uid = meta_string(created.body, "uid");
  return Delivery::ok();
}

Delivery KubeSink::patch_pod_status(const nlohmann::json& pod, const std::string& path) {
  auto key = meta_string(pod, "namespace", "default") + "/" + meta_string(pod, "name");
  for (int attempt = 0; attempt < 3; attempt++) {
    auto& uid = mirror_uids_[key];
    if (uid.empty()) {
      auto d = ensure_mirror(pod, path, uid);
      if (d.outcome != Delivery::Outcome::delivered) {
        mirror_uids_.erase(key);
        return d;
      }
    }
    auto r = client_->call("PATCH", path + "/status", pod_status_patch(pod, uid), kMergePatch);
    if (r.ok() && is_current_mirror_of(r.body, pod)) return Delivery::ok();
    if (!r.ok() && r.status != 404 && r.status != 409) return failed(r);
    // 404: deleted; 409: replaced (UID precondition); or being deleted / outdated: re-read.
    mirror_uids_.erase(key);
  }
  return Delivery::retry(fmt::format("{}: the mirror pod keeps changing", path));
}

Delivery KubeSink::deliver_pod(const std::shared_ptr<const nlohmann::json>& pod) {
  auto ns = meta_string(*pod, "namespace", "default"), name = meta_string(*pod, "name");
  auto path = pod_path(ns, name);
  if (path.empty()) return Delivery::rejected(fmt::format("pod {}/{}: not a valid namespace and name for the API", ns, name));
  if (node_.empty()) node_ = pod->value("spec", nlohmann::json::object()).value("nodeName", "");
  pods_[ns + "/" + name] = pod;
  if (node_uid_.empty()) {
    auto d = known_node();
    // Kept in pods_: its mirror pod is created once the Node is registered.
    if (d.outcome == Delivery::Outcome::retry && node_uid_.empty() && d.error.find("not registered") != std::string::npos)
      return Delivery::ok();
    if (d.outcome != Delivery::Outcome::delivered) return d;
  }
  return patch_pod_status(*pod, path);
}

Delivery KubeSink::delete_pod(const nlohmann::json& meta) {
  auto ns = meta.value("namespace", "default"), name = meta.value("name", "");
  auto path = pod_path(ns, name);
  if (path.empty()) return Delivery::rejected(fmt::format("pod {}/{}: not a valid namespace and name for the API", ns, name));
  // A changed manifest is a new pod of the same name: its deletion and the new pod's status
  // may come in either order, and the new pod's mirror pod must stay.
  auto key = ns + "/" + name, uid = meta.value("uid", "");
  if (auto it = pods_.find(key); it != pods_.end()) {
    if (!uid.empty() && meta_string(*it->second, "uid") != uid) return Delivery::ok();
    pods_.erase(it);
    mirror_uids_.erase(key);
  }
  auto got = client_->call("GET", path);
  if (got.status == 404) return Delivery::ok();
  if (!got.ok()) return failed(got);
  if (!is_mirror_pod(got.body)) return Delivery::ok(); // not ours
  if (!uid.empty() && mirror_hash(got.body) != uid) return Delivery::ok(); // another pod's by now
  auto r = client_->call("DELETE", path, mirror_delete_options(meta_string(got.body, "uid")));
  if (r.ok() || r.status == 404 || r.status == 409) return Delivery::ok(); // 409: already replaced
  return failed(r);
}

// The node's pods, metadata only (names, annotations, deletionTimestamp: all the checks
// read), as the API server answers since 1.15: with 100 pods a tenth of the full list,
// which the keepalive fetches every renewal. A server without it sends the full list.
KubeReply KubeSink::list_node_pods(const std::string& node) {
  return client_->call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3D" + url_escape(node), nullptr,
                       "application/json",
                       "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json");
}

Delivery KubeSink::remove_orphans(const nlohmann::json& pod_set) {
  auto node = pod_set.value("node", node_);
  if (!valid_dns1123_subdomain(node)) return Delivery::rejected(fmt::format("node name {:?} is not valid", node));
  node_ = node;
  std::set<std::string> keep;
  for (auto& p : pod_set.value("pods", nlohmann::json::array()))
    if (p.is_object()) keep.insert(p.value("namespace", "default") + "/" + p.value("name", ""));
  auto list = list_node_pods(node);
  if (!list.ok()) return failed(list);
  for (auto& p : list.body.value("items", nlohmann::json::array())) {
    auto ns = meta_string(p, "namespace"), name = meta_string(p, "name");
    if (!is_mirror_pod(p) || keep.count(ns + "/" + name)) continue;
    auto d = delete_pod({{"namespace", ns}, {"name", name}});
    if (d.outcome == Delivery::Outcome::retry) return d;
    log_info("status sink {}: mirror pod {}/{} deleted: its static pod is gone", config_.name, ns, name);
  }
  return Delivery::ok();
}

Delivery KubeSink::post_event(const nlohmann::json& event) {
  auto ns = meta_string(event, "namespace", "default");
  if (!valid_dns1123_label(ns)) return Delivery::rejected(fmt::format("event namespace {:?} is not valid", ns));
  auto r = client_->call("POST", fmt::format("/api/v1/namespaces/{}/events", url_escape(ns)), event);
  return r.ok() ? Delivery::ok() : failed(r);
}

Delivery KubeSink::renew_lease() {
  auto path = fmt::format("/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}", kNodeLeaseNamespace, url_escape(node_));
  auto duration = std::chrono::duration_cast<std::chrono::seconds>(config_.node_lease_duration);
  for (int attempt = 0; attempt < 2; attempt++) {
    if (lease_.is_null()) {
      auto got = client_->call("GET", path);
      if (got.status == 404) {
        auto r = client_->call("POST", fmt::format("/apis/coordination.k8s.io/v1/namespaces/{}/leases", kNodeLeaseNamespace),
                               node_lease(node_, node_uid_, duration, micro_time_now()));
        if (r.ok()) {
          lease_ = r.body;
          return Delivery::ok();
        }
        if (r.status != 409) return failed(r);
        continue; // created meanwhile: read it
      }
      if (!got.ok()) return failed(got);
      lease_ = got.body;
    }
    auto lease = node_lease(node_, node_uid_, duration, micro_time_now());
    lease["metadata"]["resourceVersion"] = meta_string(lease_, "resourceVersion");
    // Owner references someone else added stay; the Node's is set once it exists.
    if (node_uid_.empty() && lease_["metadata"].contains("ownerReferences"))
      lease["metadata"]["ownerReferences"] = lease_["metadata"]["ownerReferences"];
    auto r = client_->call("PUT", path, lease);
    if (r.ok()) {
      lease_ = r.body;
      return Delivery::ok();
    }
    lease_ = nullptr; // 409 (changed meanwhile) or 404 (deleted): read it again
    if (r.status != 409 && r.status != 404) return failed(r);
  }
  return Delivery::retry(fmt::format("{}: the Lease keeps changing", path));
}

Delivery KubeSink::resync_mirror_pods() {
  if (pods_.empty() || node_uid_.empty()) return Delivery::ok();
  auto list = list_node_pods(node_);
  if (!list.ok()) return failed(list);
  auto items = list.body.value("items", nlohmann::json::array());
  std::map<std::string, const nlohmann::json*> present;
  for (auto& p : items)
    present[meta_string(p, "namespace") + "/" + meta_string(p, "name")] = &p;
  for (auto& [key, pod] : pods_) {
    auto it = present.find(key);
    if (it != present.end() && is_current_mirror_of(*it->second, *pod)) continue;
    mirror_uids_.erase(key);
    auto d = patch_pod_status(*pod, pod_path(meta_string(*pod, "namespace", "default"), meta_string(*pod, "name")));
    if (d.outcome == Delivery::Outcome::retry) return d;
    log_info("status sink {}: mirror pod {} recreated", config_.name, key);
  }
  return Delivery::ok();
}

Delivery KubeSink::keepalive() {
  if (node_.empty()) return Delivery::ok(); // nothing to renew before the first node item
  std::string error;
  if (!client(error)) return Delivery::retry(error);
  try {
    if (node_uid_.empty()) known_node(); // the Lease's owner reference
    auto d = renew_lease();
    if (d.outcome != Delivery::Outcome::delivered) return d;
    return resync_mirror_pods();
  } catch (const std::exception& e) { // a reply of an unexpected shape
    return Delivery::retry(e.what());
  }
}

} // namespace berth::agent
