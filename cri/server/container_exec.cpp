// ExecSync runs a command through the container's shim (the runtime's `exec`) and
// returns its output, each stream capped. Exec, Attach and PortForward check the request
// and hand it to the stream server (cri/stream/server.hpp), which returns the URL the
// client then connects to.
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

// What the kubelet's streaming library checks before it hands out a URL.
void check_stdio(bool tty, bool in, bool out, bool err, const char* one_of) {
  if (tty && err) fail_code(EINVAL, "tty and stderr cannot both be true");
  if (!in && !out && !err) fail_code(EINVAL, "one of stdin, stdout, {} stderr must be set", one_of);
}

stream::ProcessTarget process_target(Runtime& rt, const std::string& id, bool tty, bool in, bool out, bool err) {
  if (id.empty()) fail_code(EINVAL, "missing required container_id");
  ContainerPtr c = rt.container(id);
  stream::ProcessTarget t;
  {
    std::lock_guard lk(c->mu);
    if (c->rec.phase != ContainerPhase::running)
      fail_code(kWrongState, "container {} is not running (state {})", c->id(), phase_name(c->rec.phase));
    t.container_stdin = c->rec.config.stdin();
    t.container_stdin_once = c->rec.config.stdin_once();
  }
  t.container_id = c->id();
  t.attach_socket = shim_attach_socket(rt.shim(), c->id());
  t.tty = tty;
  t.stdin = in;
  t.stdout = out;
  t.stderr = err;
  return t;
}

} // namespace

grpc::Status RuntimeServiceImpl::Exec(grpc::ServerContext*, const runtime::v1::ExecRequest* req,
                                      runtime::v1::ExecResponse* resp) {
  return guarded("Exec", [&] {
    check_stdio(req->tty(), req->stdin(), req->stdout(), req->stderr(), "or");
    if (req->cmd_size() == 0) fail_code(EINVAL, "cmd: must not be empty");
    if (req->cmd_size() > 4096) fail_code(EINVAL, "cmd: more than 4096 arguments");
    auto t = process_target(rt_, req->container_id(), req->tty(), req->stdin(), req->stdout(), req->stderr());
    t.command.assign(req->cmd().begin(), req->cmd().end());
    resp->set_url(rt_.streams().exec(std::move(t)));
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::Attach(grpc::ServerContext*, const runtime::v1::AttachRequest* req,
                                        runtime::v1::AttachResponse* resp) {
  return guarded("Attach", [&] {
    check_stdio(req->tty(), req->stdin(), req->stdout(), req->stderr(), "and");
    auto t = process_target(rt_, req->container_id(), req->tty(), req->stdin(), req->stdout(), req->stderr());
    resp->set_url(rt_.streams().attach(std::move(t)));
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::PortForward(grpc::ServerContext*, const runtime::v1::PortForwardRequest* req,
                                             runtime::v1::PortForwardResponse* resp) {
  return guarded("PortForward", [&] {
    if (req->pod_sandbox_id().empty()) fail_code(EINVAL, "missing required pod_sandbox_id");
    if (req->port_size() > 64) fail_code(EINVAL, "port: {} ports (at most 64)", req->port_size());
    SandboxPtr s = rt_.sandbox(req->pod_sandbox_id());
    stream::PortForwardTarget t;
    {
      std::lock_guard lk(s->mu);
      if (s->rec.phase != SandboxPhase::ready)
        fail_code(kWrongState, "sandbox {} is not ready (state {})", s->id(), phase_name(s->rec.phase));
      t.netns_path = s->rec.netns;
    }
    t.sandbox_id = s->id();
    for (int32_t p : req->port()) {
      if (p < 1 || p > 65535) fail_code(EINVAL, "port: {} is not a port", p);
      t.ports.push_back(static_cast<uint16_t>(p));
    }
    resp->set_url(rt_.streams().port_forward(std::move(t)));
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
