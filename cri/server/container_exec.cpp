// ExecSync runs a command through the container's shim (the runtime's `exec`) and
// returns its output, each stream capped; Exec, Attach and PortForward need the
// streaming server and answer UNIMPLEMENTED until berthd has one.
#include <fmt/format.h>

#include "common/error.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

grpc::Status RuntimeServiceImpl::ExecSync(grpc::ServerContext*, const runtime::v1::ExecSyncRequest* req,
                                          runtime::v1::ExecSyncResponse* resp) {
  return guarded("ExecSync", [&] {
    if (req->cmd_size() == 0) fail_code(EINVAL, "cmd: must not be empty");
    if (req->cmd_size() > 4096) fail_code(EINVAL, "cmd: more than 4096 arguments");
    if (req->timeout() < 0) fail_code(EINVAL, "timeout: {} is negative", req->timeout());
    ContainerPtr c = rt_.container(req->container_id());
    {
      std::lock_guard lk(c->mu);
      if (c->rec.phase != ContainerPhase::running)
        fail_code(kWrongState, "container {} is not running (state {})", c->id(), phase_name(c->rec.phase));
    }
    std::vector<std::string> argv(req->cmd().begin(), req->cmd().end());
    auto result = shim_exec_sync(rt_.shim(), c->id(), argv, std::chrono::seconds(std::min<int64_t>(req->timeout(), 86400)),
                                 rt_.config().exec_sync_max_output);
    if (result.timed_out)
      fail_code(ETIMEDOUT, "command {} timed out after {} s (killed)", fmt::format("{}", argv[0]).substr(0, 256),
                req->timeout());
    resp->set_stdout(std::move(result.out));
    resp->set_stderr(std::move(result.err));
    resp->set_exit_code(result.exit_code);
    return grpc::Status::OK;
  });
}

namespace {
grpc::Status streaming_not_built(const char* call) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      fmt::format("{}: berthd has no streaming server yet (exec, attach and port-forward come with "
                                  "it); ExecSync works",
                                  call));
}
} // namespace

grpc::Status RuntimeServiceImpl::Exec(grpc::ServerContext*, const runtime::v1::ExecRequest*, runtime::v1::ExecResponse*) {
  return streaming_not_built("Exec");
}
grpc::Status RuntimeServiceImpl::Attach(grpc::ServerContext*, const runtime::v1::AttachRequest*,
                                        runtime::v1::AttachResponse*) {
  return streaming_not_built("Attach");
}
grpc::Status RuntimeServiceImpl::PortForward(grpc::ServerContext*, const runtime::v1::PortForwardRequest*,
                                             runtime::v1::PortForwardResponse*) {
  return streaming_not_built("PortForward");
}

} // namespace berth::cri
