// RemoveContainer: a running container is killed first (as containerd does), then the
// runtime's state, the shim's files, the rootfs mount, the writable snapshot and the
// bundle go, then the record. Removing an unknown container succeeds.
#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/pod/rootfs.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

void Runtime::release_runtime_state(const ContainerRecord& rec) {
  // The shim deletes the runtime's container once it exited (--delete) and after a failed
  // start; a container never started has none. Only a container whose shim was lost
  // (reason Unknown), or a half-made one, may have state left in the runtime.
  bool runtime_clean = rec.phase == ContainerPhase::created ||
                       (rec.phase == ContainerPhase::exited && rec.reason != "Unknown");
  if (!shim_alive(shim_, rec.id)) image::remove_tree(path_join(shim_.state_root, rec.id));  // a killed shim's leftovers
  if (!runtime_clean) {
    std::string handler_name;
    if (auto s = find_sandbox(rec.sandbox_id)) {
      std::lock_guard lk(s->mu);
      handler_name = s->rec.runtime_handler;
    }
    handler(handler_name).remove(rec.id);
  }
  ::unlink(path_join(shim_.exit_dir, rec.id).c_str());
}

void Runtime::release_container_files(const ContainerRecord& rec) {
  // Every step is tried; the first failure is reported once all have run.
  std::exception_ptr first;
  auto attempt = [&](auto&& fn) {
    try {
      fn();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  };
  attempt([&] {
    if (!rec.bundle.empty()) unmount_rootfs(path_join(rec.bundle, "rootfs"));
  });
  attempt([&] {
    if (images_.snapshots().stat(rec.id)) images_.snapshots().remove(rec.id);
  });
  attempt([&] {
    if (!rec.bundle.empty()) image::remove_tree(rec.bundle);
  });
  if (first) std::rethrow_exception(first);
}

void Runtime::release_container_resources(const ContainerRecord& rec) {
  std::exception_ptr first;
  try {
    release_runtime_state(rec);
  } catch (...) {
    first = std::current_exception();
  }
  release_container_files(rec);
  if (first) std::rethrow_exception(first);
}

void Runtime::remove_container(const ContainerPtr& c) {
  stop_container(*c, 0);
  ContainerRecord rec;
  {
    std::lock_guard lk(c->mu);
    rec = c->rec;
  }
  release_runtime_state(rec);
  forget_cpu_sample(rec.id);
  drop(c);
  // Its files go after the answer: nothing can reach them any more.
  janitor_.post(fmt::format("files of removed container {}", rec.id), [this, rec] { release_container_files(rec); });
  dlog::info("container removed", {{"id", rec.id}});
  emit(runtime::v1::CONTAINER_DELETED_EVENT, rec.id, rec.sandbox_id);
}

grpc::Status RuntimeServiceImpl::RemoveContainer(grpc::ServerContext*, const runtime::v1::RemoveContainerRequest* req,
                                                 runtime::v1::RemoveContainerResponse*) {
  return guarded("RemoveContainer", [&] {
    if (req->container_id().empty()) fail_code(EINVAL, "container_id: must not be empty");
    ContainerPtr c = rt_.find_container(req->container_id());
    if (!c) return grpc::Status::OK;
    std::lock_guard op(c->op);
    if (!rt_.find_container(c->id())) return grpc::Status::OK;  // a racing remove won
    rt_.remove_container(c);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
