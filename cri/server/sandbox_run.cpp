// RunPodSandbox: a pod is a directory of shared files, pinned namespaces, a CNI
// attachment and, only when its containers share one PID namespace, a pause process.
// The record is written before anything is made, so a crash at any point leaves
// something recovery can find and undo.
#include <unistd.h>

#include <chrono>
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
namespace {

std::string node_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) < 0) fail_errno("gethostname");
  return buf;
}

std::string pod_hostname(const runtime::v1::PodSandboxConfig& config) {
  return config.hostname().empty() ? node_hostname() : config.hostname();
}

// Undoes a half-made pod unless dismissed.
class SandboxUndo {
public:
  SandboxUndo(Runtime& rt, SandboxPtr s) : rt_(rt), s_(std::move(s)) {}
  ~SandboxUndo() {
    if (!s_) return;
    try {
      rt_.release_sandbox_resources(*s_, true);
      image::remove_tree(rt_.sandbox_dir(s_->id()));
      rt_.drop(s_);
    } catch (const std::exception& e) {
      // Left for recovery at the next start: the record still says "creating".
      dlog::error("undo failed pod sandbox", {{"id", s_->id()}, {"error", e.what()}});
    }
  }
  void dismiss() { s_.reset(); }

private:
  Runtime& rt_;
  SandboxPtr s_;
};

// The pod's PID namespace needs a process to exist: berth-pause, as the pod's PID 1,
// through a shim like any container.
void start_pause_process(Runtime& rt, Sandbox& s, const OciRuntime& runtime) {
  std::string bundle = path_join(s.rec.dir, "pause");
  mkdir_p(bundle, 0711);
  SandboxRecord snapshot;
  {
    std::lock_guard lk(s.mu);
    snapshot = s.rec;
  }
  SandboxContext ctx = rt.context_of(snapshot);
  json spec = build_pause_spec(s.id(), ctx, rt.pause_rootfs(), rt.spec_options());
  write_file(path_join(bundle, "config.json"), spec.dump(), true, 0600);
  ShimRun run;
  run.id = s.id();
  run.bundle = bundle;
  run.runtime = runtime.handler().binary;
  run.runtime_args = runtime.handler().global_args();
  ShimStarted started = with_context("start the pod's pause process", [&] { return run_shim(rt.shim(), run); });
  std::lock_guard lk(s.mu);
  s.rec.pause_pid = started.pid;
}

} // namespace

SandboxContext Runtime::context_of(const SandboxRecord& rec) const {
  SandboxContext ctx;
  ctx.id = rec.id;
  ctx.config = &rec.config;
  ctx.netns_path = rec.netns;
  ctx.ipcns_path = rec.ipcns;
  ctx.utsns_path = rec.utsns;
  if (!rec.pause_id.empty() && rec.pause_pid > 0) ctx.pidns_path = fmt::format("/proc/{}/ns/pid", rec.pause_pid);
  ctx.hostname_path = path_join(rec.dir, "hostname");
  ctx.hosts_path = path_join(rec.dir, "hosts");
  ctx.resolv_conf_path = path_join(rec.dir, "resolv.conf");
  ctx.shm_path = pod_namespaces(rec.config).host_ipc ? "/dev/shm" : path_join(rec.dir, "shm");
  ctx.cgroup_parent = rec.cgroup_parent;
  return ctx;
}

grpc::Status RuntimeServiceImpl::RunPodSandbox(grpc::ServerContext*, const runtime::v1::RunPodSandboxRequest* req,
                                               runtime::v1::RunPodSandboxResponse* resp) {
  return guarded("RunPodSandbox", [&] {
    const auto& config = req->config();
    validate_sandbox_config(config, rt_.config().cgroup_driver);
    const OciRuntime& runtime = rt_.handler(req->runtime_handler());
    PodNamespaces ns = pod_namespaces(config);

    SandboxRecord rec;
    rec.id = new_id();
    rec.name = sandbox_name(config.metadata());
    rec.created_ns = now_ns();
    rec.config = config;
    rec.runtime_handler = req->runtime_handler();
    rec.dir = rt_.sandbox_dir(rec.id);
    // The kubelet always names one; other clients (crictl, critest) get berthd's own.
    rec.cgroup_parent = config.linux().cgroup_parent();
    if (rec.cgroup_parent.empty())
      rec.cgroup_parent = rt_.config().cgroup_driver == CgroupDriver::systemd ? "berth.slice" : "/berth";
    auto s = std::make_shared<Sandbox>(std::move(rec));
    rt_.add(s);  // reserves the name and writes the record (phase creating)
    SandboxUndo undo(rt_, s);
    const std::string& id = s->id();

    // Step timings go into the log line: where a pod's start-up time goes.
    auto t0 = std::chrono::steady_clock::now(), t = t0;
    std::vector<std::pair<std::string, std::string>> timings;
    auto lap = [&](const char* step) {
      auto now = std::chrono::steady_clock::now();
      timings.emplace_back(step, fmt::format("{:.1f}", std::chrono::duration<double, std::milli>(now - t).count()));
      t = now;
    };
    mkdir_p(s->rec.dir, 0711);
    SandboxFilesRequest files;
    files.dir = s->rec.dir;
    files.hostname = pod_hostname(config);
    files.host_network = ns.host_network;
    files.private_shm = !ns.host_ipc;
    files.shm_size = rt_.config().shm_size;
    const auto& dns = config.dns_config();
    files.dns_servers.assign(dns.servers().begin(), dns.servers().end());
    files.dns_searches.assign(dns.searches().begin(), dns.searches().end());
    files.dns_options.assign(dns.options().begin(), dns.options().end());
    prepare_sandbox_files(files);
    lap("files_ms");

    PinRequest pin;
    pin.dir = path_join(s->rec.dir, "ns");
    pin.net = !ns.host_network;
    pin.ipc = !ns.host_ipc;
    pin.uts = !ns.host_network;
    pin.hostname = files.hostname;
    for (const auto& [k, v] : config.linux().sysctls()) pin.sysctls.emplace_back(k, v);
    PinnedNamespaces pins = with_context("pin the pod's namespaces", [&] { return pin_namespaces(pin); });
    lap("pin_ms");
    {
      std::lock_guard lk(s->mu);
      s->rec.netns = pins.net;
      s->rec.ipcns = pins.ipc;
      s->rec.utsns = pins.uts;
    }

    // Both intents are recorded before either step runs: a crash in the middle is undone
    // with a DEL and a kill.
    std::string network = ns.host_network ? "" : rt_.network().default_network();
    {
      std::lock_guard lk(s->mu);
      s->rec.cni_network = network;
      if (ns.shared_pid) s->rec.pause_id = id;
    }
    rt_.persist(*s);
    // The pause process needs the pins, not the network: CNI ADD and its start run side
    // by side (each is a few processes and milliseconds of waiting).
    std::exception_ptr pause_error;
    std::thread pause_thread;
    if (ns.shared_pid)
      pause_thread = std::thread([&] {
        try {
          start_pause_process(rt_, *s, runtime);
        } catch (...) {
          pause_error = std::current_exception();
        }
      });
    std::exception_ptr cni_error;
    try {
      if (!network.empty()) {
        auto attachment = time_cni("ADD", [&] {
          return rt_.network().setup(network, id, pins.net, pod_identity(config), port_mappings(config));
        });
        std::lock_guard lk(s->mu);
        if (!attachment.ips.empty()) s->rec.ip = attachment.ips[0];
        s->rec.additional_ips.assign(attachment.ips.begin() + std::min<size_t>(1, attachment.ips.size()),
                                     attachment.ips.end());
      }
    } catch (...) {
      cni_error = std::current_exception();
    }
    lap("cni_ms");
    if (pause_thread.joinable()) pause_thread.join();
    lap("pause_wait_ms");
    if (cni_error) std::rethrow_exception(cni_error);
    if (pause_error) std::rethrow_exception(pause_error);

    {
      std::lock_guard lk(s->mu);
      s->rec.phase = SandboxPhase::ready;
    }
    rt_.persist(*s);
    undo.dismiss();
    resp->set_pod_sandbox_id(id);
    lap("record_ms");
    if (dlog::enabled(dlog::Level::debug)) {
      std::string steps;
      for (auto& [k, v] : timings) steps += fmt::format("{}{}={}", steps.empty() ? "" : " ", k, v);
      dlog::debug("pod sandbox timings", {{"id", id}, {"steps", steps}});
    }
    dlog::info("pod sandbox ready", {{"id", id}, {"name", s->rec.name}, {"ip", s->rec.ip}});
    rt_.emit(runtime::v1::CONTAINER_CREATED_EVENT, id, id);
    rt_.emit(runtime::v1::CONTAINER_STARTED_EVENT, id, id);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
