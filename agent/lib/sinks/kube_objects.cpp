#include "agent/lib/sinks/kube_objects.hpp"

#include <sys/time.h>

#include <ctime>

#include <fmt/format.h>

namespace berth::agent {

nlohmann::json node_registration(const nlohmann::json& node) {
  auto out = node;
  auto& labels = out["metadata"]["labels"];
  if (!labels.is_object()) labels = nlohmann::json::object();
  if (labels.contains("kubernetes.io/os")) labels["beta.kubernetes.io/os"] = labels["kubernetes.io/os"];
  if (labels.contains("kubernetes.io/arch")) labels["beta.kubernetes.io/arch"] = labels["kubernetes.io/arch"];
  return out;
}

nlohmann::json node_status_patch(const nlohmann::json& node) {
  return {{"status", node.value("status", nlohmann::json::object())}};
}

std::string static_pod_hash(const nlohmann::json& pod) {
  auto meta = pod.value("metadata", nlohmann::json::object());
  auto ann = meta.value("annotations", nlohmann::json::object());
  if (ann.is_object() && ann.contains(kHashAnnotation) && ann[kHashAnnotation].is_string())
    return ann[kHashAnnotation].get<std::string>();
  return meta.value("uid", "");
}

nlohmann::json mirror_pod(const nlohmann::json& pod, const std::string& node, const std::string& node_uid) {
  auto meta = pod.value("metadata", nlohmann::json::object());
  nlohmann::json m = {{"name", meta.value("name", "")}, {"namespace", meta.value("namespace", "default")}};
  if (meta.contains("labels") && meta["labels"].is_object() && !meta["labels"].empty()) m["labels"] = meta["labels"];
  auto ann = meta.value("annotations", nlohmann::json::object());
  if (!ann.is_object()) ann = nlohmann::json::object();
  auto hash = static_pod_hash(pod);
  ann[kMirrorAnnotation] = hash;
  ann[kHashAnnotation] = hash;
  ann["kubernetes.io/config.source"] = "file";
  m["annotations"] = ann;
  m["ownerReferences"] = nlohmann::json::array(
      {{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}, {"uid", node_uid}, {"controller", true}}});
  auto spec = pod.value("spec", nlohmann::json::object());
  spec["nodeName"] = node;
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", m}, {"spec", spec}};
}

static std::string annotation(const nlohmann::json& pod, const char* key) {
  if (!pod.is_object()) return "";
  auto meta = pod.value("metadata", nlohmann::json::object());
  auto ann = meta.value("annotations", nlohmann::json::object());
  return ann.is_object() && ann.contains(key) && ann[key].is_string() ? ann[key].get<std::string>() : "";
}

bool is_mirror_pod(const nlohmann::json& api_pod) {
  if (!api_pod.is_object()) return false;
  auto meta = api_pod.value("metadata", nlohmann::json::object());
  auto ann = meta.value("annotations", nlohmann::json::object());
  return ann.is_object() && ann.contains(kMirrorAnnotation);
}

std::string mirror_hash(const nlohmann::json& api_pod) { return annotation(api_pod, kMirrorAnnotation); }

bool is_current_mirror_of(const nlohmann::json& api_pod, const nlohmann::json& static_pod) {
  auto meta = api_pod.value("metadata", nlohmann::json::object());
  return is_mirror_pod(api_pod) && !meta.contains("deletionTimestamp") &&
         annotation(api_pod, kMirrorAnnotation) == static_pod_hash(static_pod);
}

nlohmann::json pod_status_patch(const nlohmann::json& pod, const std::string& mirror_uid) {
  return {{"metadata", {{"uid", mirror_uid}}}, {"status", pod.value("status", nlohmann::json::object())}};
}

nlohmann::json mirror_delete_options(const std::string& uid) {
  nlohmann::json o = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"gracePeriodSeconds", 0}};
  if (!uid.empty()) o["preconditions"] = {{"uid", uid}};
  return o;
}

nlohmann::json node_lease(const std::string& node, const std::string& node_uid, std::chrono::seconds duration,
                          const std::string& renew_time) {
  nlohmann::json meta = {{"name", node}, {"namespace", kNodeLeaseNamespace}};
  if (!node_uid.empty())
    meta["ownerReferences"] = nlohmann::json::array({{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}, {"uid", node_uid}}});
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", meta},
          {"spec",
           {{"holderIdentity", node},
            {"leaseDurationSeconds", static_cast<int64_t>(duration.count())},
            {"renewTime", renew_time}}}};
}

std::string micro_time_now() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  struct tm tm;
  ::gmtime_r(&tv.tv_sec, &tm);
  char buf[32];
  ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06d}Z", buf, static_cast<int>(tv.tv_usec));
}

} // namespace berth::agent
