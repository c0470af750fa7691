// PodSandboxStatus and ListPodSandbox, from memory.
#include <google/protobuf/util/json_util.h>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/pod/namespaces.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {
namespace {

runtime::v1::PodSandboxState cri_state(const Sandbox& s) {
  return s.rec.phase == SandboxPhase::ready && !s.pause_exited ? runtime::v1::SANDBOX_READY : runtime::v1::SANDBOX_NOTREADY;
}

} // namespace

void Runtime::fill(const Sandbox& s, runtime::v1::PodSandbox* out) const {
  const SandboxRecord& r = s.rec;
  out->set_id(r.id);
  *out->mutable_metadata() = r.config.metadata();
  out->set_state(cri_state(s));
  out->set_created_at(r.created_ns);
  *out->mutable_labels() = r.config.labels();
  *out->mutable_annotations() = r.config.annotations();
  out->set_runtime_handler(r.runtime_handler);
}

void Runtime::fill(const Sandbox& s, runtime::v1::PodSandboxStatus* out) const {
  const SandboxRecord& r = s.rec;
  out->set_id(r.id);
  *out->mutable_metadata() = r.config.metadata();
  out->set_state(cri_state(s));
  out->set_created_at(r.created_ns);
  if (!r.ip.empty()) {
    out->mutable_network()->set_ip(r.ip);
    for (const auto& ip : r.additional_ips) out->mutable_network()->add_additional_ips()->set_ip(ip);
  }
  *out->mutable_linux()->mutable_namespaces()->mutable_options() =
      r.config.linux().security_context().namespace_options();
  *out->mutable_labels() = r.config.labels();
  *out->mutable_annotations() = r.config.annotations();
  out->set_runtime_handler(r.runtime_handler);
}

grpc::Status RuntimeServiceImpl::PodSandboxStatus(grpc::ServerContext*, const runtime::v1::PodSandboxStatusRequest* req,
                                                  runtime::v1::PodSandboxStatusResponse* resp) {
  return guarded("PodSandboxStatus", [&] {
    SandboxPtr s = rt_.sandbox(req->pod_sandbox_id());
    SandboxRecord rec;
    {
      std::lock_guard lk(s->mu);
      rt_.fill(*s, resp->mutable_status());
      rec = s->rec;
    }
    resp->set_timestamp(now_ns());
    if (!req->verbose()) return grpc::Status::OK;
    std::string config_json;
    google::protobuf::util::MessageToJsonString(rec.config, &config_json);
    json info = {{"pid", rec.pause_pid},
                 {"processStatus", rec.pause_pid > 0 ? "running" : "none"},
                 {"netNamespacePath", rec.netns},
                 {"netNamespaceClosed", rec.netns.empty() || !is_pinned_namespace(rec.netns)},
                 {"ipcNamespacePath", rec.ipcns},
                 {"utsNamespacePath", rec.utsns},
                 {"cniNetwork", rec.cni_network},
                 {"cgroupParent", rec.cgroup_parent},
                 {"runtimeHandler", rec.runtime_handler},
                 {"sandboxDir", rec.dir},
                 {"config", json::parse(config_json, nullptr, false)}};
    (*resp->mutable_info())["info"] = info.dump(-1, ' ', false, json::error_handler_t::replace);
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::ListPodSandbox(grpc::ServerContext*, const runtime::v1::ListPodSandboxRequest* req,
                                                runtime::v1::ListPodSandboxResponse* resp) {
  return guarded("ListPodSandbox", [&] {
    const auto& f = req->filter();
    auto add = [&](const SandboxPtr& s) {
      std::lock_guard lk(s->mu);
      if (s->rec.phase == SandboxPhase::creating) return;
      if (f.has_state() && cri_state(*s) != f.state().state()) return;
      for (const auto& [k, v] : f.label_selector()) {
        auto it = s->rec.config.labels().find(k);
        if (it == s->rec.config.labels().end() || it->second != v) return;
      }
      rt_.fill(*s, resp->add_items());
    };
    if (!f.id().empty()) {
      if (SandboxPtr s = rt_.find_sandbox(f.id())) add(s);
      return grpc::Status::OK;
    }
    for (auto& s : rt_.sandboxes()) add(s);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
