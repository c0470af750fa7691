// UpdateContainerResources (the runtime's `update` for a running container; the stored
// spec either way, so a later start gets the new limits) and ReopenContainerLog (the
// shim reopens the CRI log after the kubelet rotated it).
#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

grpc::Status RuntimeServiceImpl::UpdateContainerResources(grpc::ServerContext*,
                                                          const runtime::v1::UpdateContainerResourcesRequest* req,
                                                          runtime::v1::UpdateContainerResourcesResponse*) {
  return guarded("UpdateContainerResources", [&] {
    ContainerPtr c = rt_.container(req->container_id());
    std::lock_guard op(c->op);
    ContainerRecord rec;
    {
      std::lock_guard lk(c->mu);
      rec = c->rec;
    }
    if (rec.phase == ContainerPhase::exited)
      fail_code(kWrongState, "container {} has exited: its resources cannot be updated", rec.id);
    if (!req->has_linux()) return grpc::Status::OK;
    json resources = oci_resources(req->linux(), rt_.spec_options(), "linux");
    // The running container first: when the runtime refuses, nothing changed.
    if (rec.phase == ContainerPhase::running) {
      std::string handler_name;
      if (auto s = rt_.find_sandbox(rec.sandbox_id)) {
        std::lock_guard lk(s->mu);
        handler_name = s->rec.runtime_handler;
      }
      rt_.handler(handler_name).update(rec.id, resources);
    }
    // Then the bundle's spec, which a later start uses; merged, so the device rules made
    // at create stay.
    std::string spec_path = path_join(rec.bundle, "config.json");
    json spec = json::parse(read_file(spec_path));
    for (auto& [key, value] : resources.items()) spec["linux"]["resources"][key] = value;
    write_file_atomic(spec_path, spec.dump(), 0600, false);
    {
      std::lock_guard lk(c->mu);
      *c->rec.config.mutable_linux()->mutable_resources() = req->linux();
    }
    rt_.persist(*c);
    dlog::info("container resources updated", {{"id", rec.id}});
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::ReopenContainerLog(grpc::ServerContext*,
                                                    const runtime::v1::ReopenContainerLogRequest* req,
                                                    runtime::v1::ReopenContainerLogResponse*) {
  return guarded("ReopenContainerLog", [&] {
    ContainerPtr c = rt_.container(req->container_id());
    {
      std::lock_guard lk(c->mu);
      if (c->rec.phase != ContainerPhase::running)
        fail_code(kWrongState, "container {} is not running: its log is not open", c->id());
    }
    if (!shim_request(rt_.shim(), c->id(), "reopen-log"))
      fail_code(kWrongState, "container {} is not running: its monitor is gone", c->id());
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
