// StartContainer: one berth-shim for the container, which runs the OCI runtime's
// create and start and then monitors it (CRI log, exit file). A start that fails leaves
// the container exited with reason StartError, as containerd reports it.
#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/pod/rootfs.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

grpc::Status RuntimeServiceImpl::StartContainer(grpc::ServerContext*, const runtime::v1::StartContainerRequest* req,
                                                runtime::v1::StartContainerResponse*) {
  return guarded("StartContainer", [&] {
    ContainerPtr c = rt_.container(req->container_id());
    std::string sandbox_id;
    {
      std::lock_guard lk(c->mu);
      sandbox_id = c->rec.sandbox_id;
    }
    SandboxPtr s = rt_.sandbox(sandbox_id);
    std::shared_lock pod_op(s->op);
    std::lock_guard op(c->op);
    if (!rt_.find_container(c->id())) fail_code(ENOENT, "container \"{}\" not found", c->id());
    ContainerRecord rec;
    {
      std::lock_guard lk(c->mu);
      rec = c->rec;
    }
    if (rec.phase != ContainerPhase::created)
      fail_code(kWrongState, "container {} is {}: only a created container can be started", rec.id, phase_name(rec.phase));
    std::string handler_name;
    {
      std::lock_guard lk(s->mu);
      if (s->rec.phase != SandboxPhase::ready)
        fail_code(kWrongState, "pod sandbox {} of container {} is not ready", s->id(), rec.id);
      handler_name = s->rec.runtime_handler;
    }
    const OciRuntime& runtime = rt_.handler(handler_name);
    try {
      std::string rootfs = path_join(rec.bundle, "rootfs");
      if (!is_mount_point(rootfs)) mount_rootfs(rt_.images().snapshots().mounts(rec.id), rootfs);  // after a reboot
      // The container's directory under the pod's log directory ("<name>/<attempt>.log"),
      // as containerd makes it; the pod's directory itself is the kubelet's.
      if (!rec.log_path.empty()) mkdir_p(rec.log_path.substr(0, rec.log_path.rfind('/')), 0755);
      ShimRun run;
      run.id = rec.id;
      run.bundle = rec.bundle;
      run.runtime = runtime.handler().binary;
      run.runtime_args = runtime.handler().global_args();
      run.log_path = rec.log_path;
      run.stdin_pipe = rec.config.stdin();
      run.stdin_once = rec.config.stdin_once();
      // Taken before: a quick exit may be recorded before run_shim returns.
      int64_t started_ns = now_ns();
      ShimStarted started = run_shim(rt_.shim(), run);
      {
        std::lock_guard lk(c->mu);
        c->rec.started_ns = c->rec.finished_ns ? std::min(started_ns, c->rec.finished_ns) : started_ns;
        c->rec.pid = started.pid;
        // The exit may already have been recorded by the exit watcher.
        if (c->rec.phase == ContainerPhase::created) c->rec.phase = ContainerPhase::running;
      }
    } catch (const Error& e) {
      {
        std::lock_guard lk(c->mu);
        c->rec.phase = ContainerPhase::exited;
        c->rec.started_ns = c->rec.finished_ns = now_ns();
        c->rec.exit_code = 128;
        c->rec.reason = "StartError";
        c->rec.message = e.what();
        if (c->rec.message.size() > 4096) c->rec.message.resize(4096);
        c->exited.notify_all();
      }
      rt_.persist(*c);
      rt_.emit(runtime::v1::CONTAINER_STOPPED_EVENT, rec.id, rec.sandbox_id);
      throw;
    }
    rt_.persist(*c);
    dlog::info("container started", {{"id", rec.id}, {"pid", std::to_string(c->rec.pid)}});
    rt_.emit(runtime::v1::CONTAINER_STARTED_EVENT, rec.id, rec.sandbox_id);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
