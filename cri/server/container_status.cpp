// ContainerStatus and ListContainers, answered from memory (the kubelet relists every
// second): the record under its lock, no I/O but the verbose info's config.json.
#include <google/protobuf/util/json_util.h>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {
namespace {

runtime::v1::ContainerState cri_state(ContainerPhase p) {
  switch (p) {
  case ContainerPhase::created: return runtime::v1::CONTAINER_CREATED;
  case ContainerPhase::running: return runtime::v1::CONTAINER_RUNNING;
  case ContainerPhase::exited: return runtime::v1::CONTAINER_EXITED;
  case ContainerPhase::creating: break;
  }
  return runtime::v1::CONTAINER_UNKNOWN;
}

template <typename Map>
bool labels_match(const Map& labels, const google::protobuf::Map<std::string, std::string>& selector) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

} // namespace

void Runtime::fill(const Container& c, runtime::v1::Container* out) const {
  const ContainerRecord& r = c.rec;
  out->set_id(r.id);
  out->set_pod_sandbox_id(r.sandbox_id);
  *out->mutable_metadata() = r.config.metadata();
  out->mutable_image()->set_image(r.image_name);
  out->set_image_ref(r.image_ref);
  out->set_image_id(r.image_id);
  out->set_state(cri_state(r.phase));
  out->set_created_at(r.created_ns);
  *out->mutable_labels() = r.config.labels();
  *out->mutable_annotations() = r.config.annotations();
}

void Runtime::fill(const Container& c, runtime::v1::ContainerStatus* out) const {
  const ContainerRecord& r = c.rec;
  out->set_id(r.id);
  *out->mutable_metadata() = r.config.metadata();
  out->set_state(cri_state(r.phase));
  out->set_created_at(r.created_ns);
  out->set_started_at(r.started_ns);
  out->set_finished_at(r.finished_ns);
  out->set_exit_code(r.exit_code);
  *out->mutable_image() = r.config.image();
  out->mutable_image()->set_image(r.image_name);
  out->set_image_ref(r.image_ref);
  out->set_image_id(r.image_id);
  out->set_reason(r.reason);
  out->set_message(r.message);
  *out->mutable_labels() = r.config.labels();
  *out->mutable_annotations() = r.config.annotations();
  *out->mutable_mounts() = r.config.mounts();
  out->set_log_path(r.log_path);
  if (r.config.linux().has_resources())
    *out->mutable_resources()->mutable_linux() = r.config.linux().resources();
}

grpc::Status RuntimeServiceImpl::ContainerStatus(grpc::ServerContext*, const runtime::v1::ContainerStatusRequest* req,
                                                 runtime::v1::ContainerStatusResponse* resp) {
  return guarded("ContainerStatus", [&] {
    ContainerPtr c = rt_.container(req->container_id());
    ContainerRecord rec;
    {
      std::lock_guard lk(c->mu);
      rt_.fill(*c, resp->mutable_status());
      if (!req->verbose()) return grpc::Status::OK;
      rec = c->rec;
    }
    // containerd's verbose info: what the kubelet's debug tools and crictl inspect show.
    std::string config_json;
    google::protobuf::util::MessageToJsonString(rec.config, &config_json);
    json info = {{"sandboxID", rec.sandbox_id},
                 {"pid", rec.pid},
                 {"removing", false},
                 {"snapshotKey", rec.id},
                 {"snapshotter", "overlayfs"},
                 {"runtimeType", "berth-shim"},
                 {"bundle", rec.bundle},
                 {"cgroupsPath", rec.cgroups_path},
                 {"config", json::parse(config_json, nullptr, false)}};
    if (auto spec = try_read_file(path_join(rec.bundle, "config.json"))) info["runtimeSpec"] = json::parse(*spec, nullptr, false);
    (*resp->mutable_info())["info"] = info.dump(-1, ' ', false, json::error_handler_t::replace);
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::ListContainers(grpc::ServerContext*, const runtime::v1::ListContainersRequest* req,
                                                runtime::v1::ListContainersResponse* resp) {
  return guarded("ListContainers", [&] {
    const auto& f = req->filter();
    auto add = [&](const ContainerPtr& c) {
      std::lock_guard lk(c->mu);
      const ContainerRecord& r = c->rec;
      if (r.phase == ContainerPhase::creating) return;
      if (f.has_state() && cri_state(r.phase) != f.state().state()) return;
      if (!f.pod_sandbox_id().empty() && r.sandbox_id.compare(0, f.pod_sandbox_id().size(), f.pod_sandbox_id()) != 0)
        return;
      if (!labels_match(r.config.labels(), f.label_selector())) return;
      rt_.fill(*c, resp->add_containers());
    };
    if (!f.id().empty()) {
      if (ContainerPtr c = rt_.find_container(f.id())) add(c);
      return grpc::Status::OK;
    }
    for (auto& c : rt_.containers()) add(c);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
