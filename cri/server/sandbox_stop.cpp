// StopPodSandbox and RemovePodSandbox: containers first (killed at once, as containerd
// does for a pod being stopped), then the pause process, the CNI attachment (DEL from
// the cache), the pins and the shm mount. Both are idempotent.
#include <signal.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/pod/namespaces.hpp"
#include "cri/pod/sandbox_files.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/metrics.hpp"
#include "cri/server/pod_config.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

void Runtime::stop_pause(Sandbox& s) {
  std::string pause_id;
  {
    std::lock_guard lk(s.mu);
    pause_id = s.rec.pause_id;
  }
  if (pause_id.empty()) return;
  const OciRuntime& runtime = handler(s.rec.runtime_handler);
  if (shim_alive(shim_, pause_id)) {
    runtime.kill(pause_id, SIGKILL, true);
    // The shim records the exit and deletes the container; give it the moment it needs.
    for (int i = 0; i < 500 && shim_alive(shim_, pause_id); ++i) ::usleep(10000);
  }
  runtime.remove(pause_id);  // no-op when the shim already deleted it
  image::remove_tree(path_join(shim_.state_root, pause_id));
  ::unlink(path_join(shim_.exit_dir, pause_id).c_str());
  std::lock_guard lk(s.mu);
  s.rec.pause_pid = 0;
}

void Runtime::release_sandbox_resources(Sandbox& s, bool best_effort) {
  auto attempt = [&](const char* what, auto&& fn) {
    try {
      fn();
      return true;
    } catch (const std::exception& e) {
      if (!best_effort) throw;
      dlog::warn(what, {{"sandbox", s.id()}, {"error", e.what()}});
      return false;
    }
  };
  SandboxRecord rec;
  {
    std::lock_guard lk(s.mu);
    rec = s.rec;
  }
  // The pause process and the CNI attachment are independent: taken down side by side.
  std::exception_ptr pause_error;
  std::thread pause_thread;
  if (!rec.pause_id.empty())
    pause_thread = std::thread([&] {
      try {
        stop_pause(s);
      } catch (...) {
        pause_error = std::current_exception();
      }
    });
  std::exception_ptr cni_error;
  if (!rec.cni_network.empty()) {
    try {
      time_cni("DEL", [&] {
        network_.teardown(rec.id, rec.netns, rec.cni_network, pod_identity(rec.config), port_mappings(rec.config));
      });
      std::lock_guard lk(s.mu);
      s.rec.cni_network.clear();
    } catch (...) {
      cni_error = std::current_exception();
    }
  }
  if (pause_thread.joinable()) pause_thread.join();
  attempt("stop the pause process", [&] {
    if (pause_error) std::rethrow_exception(pause_error);
  });
  // A DEL that fails leaves the pin in place, so that StopPodSandbox can be retried;
  // when the pod is going away regardless, the attachment is given up.
  attempt("CNI DEL", [&] {
    if (cni_error) std::rethrow_exception(cni_error);
  });
  {
    std::lock_guard lk(s.mu);
    s.rec.cni_network.clear();
  }
  attempt("unpin the pod's namespaces", [&] { unpin_namespaces(path_join(rec.dir, "ns")); });
  attempt("unmount the pod's /dev/shm", [&] { release_sandbox_shm(rec.dir); });
  std::lock_guard lk(s.mu);
  s.rec.netns.clear();
  s.rec.ipcns.clear();
  s.rec.utsns.clear();
}

void Runtime::stop_sandbox(Sandbox& s, bool best_effort) {
  streams_.cancel(s.id());  // its port-forward sessions hold its network namespace
  for (auto& c : containers_of(s.id())) {
    std::lock_guard op(c->op);
    stop_container(*c, 0);
  }
  release_sandbox_resources(s, best_effort);
  bool changed;
  {
    std::lock_guard lk(s.mu);
    changed = s.rec.phase != SandboxPhase::notready;
    s.rec.phase = SandboxPhase::notready;
  }
  persist(s);
  if (changed) {
    dlog::info("pod sandbox stopped", {{"id", s.id()}});
    emit(runtime::v1::CONTAINER_STOPPED_EVENT, s.id(), s.id());
  }
}

void Runtime::remove_sandbox(const SandboxPtr& s) {
  for (auto& c : containers_of(s->id())) {
    std::lock_guard op(c->op);
    if (find_container(c->id())) remove_container(c);  // unless a racing RemoveContainer won
  }
  stop_sandbox(*s, true);  // the pod goes: what cannot be undone is logged, not kept
  image::remove_tree(s->rec.dir);
  forget_cpu_sample("pod:" + s->id());
  drop(s);
  dlog::info("pod sandbox removed", {{"id", s->id()}});
  emit(runtime::v1::CONTAINER_DELETED_EVENT, s->id(), s->id());
}

grpc::Status RuntimeServiceImpl::StopPodSandbox(grpc::ServerContext*, const runtime::v1::StopPodSandboxRequest* req,
                                                runtime::v1::StopPodSandboxResponse*) {
  return guarded("StopPodSandbox", [&] {
    SandboxPtr s = rt_.sandbox(req->pod_sandbox_id());
    std::lock_guard op(s->op);
    if (!rt_.find_sandbox(s->id())) return grpc::Status::OK;  // removed while we waited: stopped
    rt_.stop_sandbox(*s);
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::RemovePodSandbox(grpc::ServerContext*, const runtime::v1::RemovePodSandboxRequest* req,
                                                  runtime::v1::RemovePodSandboxResponse*) {
  return guarded("RemovePodSandbox", [&] {
    if (req->pod_sandbox_id().empty()) fail_code(EINVAL, "pod_sandbox_id: must not be empty");
    SandboxPtr s = rt_.find_sandbox(req->pod_sandbox_id());
    if (!s) return grpc::Status::OK;  // already removed: CRI asks for idempotence
    std::lock_guard op(s->op);
    if (!rt_.find_sandbox(s->id())) return grpc::Status::OK;  // a racing remove won
    rt_.remove_sandbox(s);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
