// StopContainer: the image's stop signal, up to `timeout` seconds for the container to
// exit, then SIGKILL to every process of it. Idempotent. Waiting never holds the
// container's record lock, so the exit being waited for can land.
#include <signal.h>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

void Runtime::wait_for_exit(Container& c, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::unique_lock lk(c.mu);
  while (c.rec.phase != ContainerPhase::exited) {
    if (c.exited.wait_until(lk, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1))) ==
            std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline)
      return;
    if (c.rec.phase == ContainerPhase::exited) return;
    // A shim killed behind our back never reports: notice it rather than wait forever.
    lk.unlock();
    bool alive = shim_alive(shim_, c.id());
    auto exit = read_exit_record(shim_.exit_dir, c.id());
    lk.lock();
    if (c.rec.phase == ContainerPhase::exited) return;
    if (exit) {
      apply_exit(c, *exit);
    } else if (!alive) {
      ExitRecord lost;
      lost.exit_code = 255;
      apply_exit(c, lost, "Unknown");
      c.rec.message = "the container's monitor (berth-shim) is gone; its exit status is unknown";
    }
  }
}

void Runtime::stop_container(Container& c, int64_t timeout_s) {
  std::string sandbox_id;
  int stop_signal;
  {
    std::lock_guard lk(c.mu);
    if (c.rec.phase != ContainerPhase::running) return;
    sandbox_id = c.rec.sandbox_id;
    stop_signal = c.rec.stop_signal;
  }
  std::string handler_name;
  if (auto s = find_sandbox(sandbox_id)) {
    std::lock_guard lk(s->mu);
    handler_name = s->rec.runtime_handler;
  }
  const OciRuntime& runtime = handler(handler_name);
  auto exited = [&] {
    std::lock_guard lk(c.mu);
    return c.rec.phase == ContainerPhase::exited;
  };
  if (timeout_s > 0) {
    runtime.kill(c.id(), stop_signal, false);
    wait_for_exit(c, std::chrono::seconds(timeout_s));
  }
  if (!exited()) {
    runtime.kill(c.id(), SIGKILL, true);
    wait_for_exit(c, std::chrono::seconds(60));
    if (!exited()) fail_code(ETIMEDOUT, "container {} did not exit within 60 s of SIGKILL", c.id());
  }
  persist(c);
}

grpc::Status RuntimeServiceImpl::StopContainer(grpc::ServerContext*, const runtime::v1::StopContainerRequest* req,
                                               runtime::v1::StopContainerResponse*) {
  return guarded("StopContainer", [&] {
    if (req->timeout() < 0) fail_code(EINVAL, "timeout: {} is negative", req->timeout());
    ContainerPtr c = rt_.container(req->container_id());
    // Not under the op lock: a second StopContainer (the kubelet's forced one, timeout 0)
    // must not wait behind a first one's grace period.
    rt_.stop_container(*c, std::min<int64_t>(req->timeout(), 86400));
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
