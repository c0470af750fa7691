// The API objects the kubernetes sink sends, built as the kubelet builds them: pure
// functions of berthlet's items, unit-tested without a server.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace berth::agent {

inline constexpr const char* kMirrorAnnotation = "kubernetes.io/config.mirror";
inline constexpr const char* kHashAnnotation = "kubernetes.io/config.hash";
inline constexpr const char* kNodeLeaseNamespace = "kube-node-lease";

// The Node to register: berthlet's v1 Node with the kubelet's beta.kubernetes.io/os and
// beta.kubernetes.io/arch labels added.
nlohmann::json node_registration(const nlohmann::json& node);
// A JSON merge patch of the Node's status: the whole status, lists (conditions, addresses)
// replaced as a whole.
nlohmann::json node_status_patch(const nlohmann::json& node);

// The static pod's config hash: its kubernetes.io/config.hash annotation, else its UID.
std::string static_pod_hash(const nlohmann::json& pod);
// The mirror pod of a static pod on node (node_uid: the registered Node's UID): the
// pod's metadata and spec, the config.mirror annotation, an owner reference to the Node.
nlohmann::json mirror_pod(const nlohmann::json& pod, const std::string& node, const std::string& node_uid);
// A pod from the API server is a mirror pod (of any static pod).
bool is_mirror_pod(const nlohmann::json& api_pod);
// Its kubernetes.io/config.mirror annotation (the static pod's hash), or "".
std::string mirror_hash(const nlohmann::json& api_pod);
// ... of this static pod (same config hash), and not being deleted.
bool is_current_mirror_of(const nlohmann::json& api_pod, const nlohmann::json& static_pod);
// The status patch of a mirror pod: {"metadata":{"uid":...},"status":...}; the UID is a
// precondition (409 when the mirror pod was replaced since), as the kubelet's.
nlohmann::json pod_status_patch(const nlohmann::json& pod, const std::string& mirror_uid);
// DeleteOptions for a mirror pod: no grace period (nothing runs it from the API's side),
// the UID as a precondition when known.
nlohmann::json mirror_delete_options(const std::string& uid);

// The node's Lease as the kubelet's node lease controller writes it.
nlohmann::json node_lease(const std::string& node, const std::string& node_uid, std::chrono::seconds duration,
                          const std::string& renew_time);
// "2026-12-07T09:40:00.123456Z": metav1.MicroTime.
std::string micro_time_now();

} // namespace berth::agent
