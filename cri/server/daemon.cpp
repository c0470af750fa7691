#include "cri/server/daemon.hpp"

#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "common/sd_notify.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/image_service.hpp"
#include "cri/server/metrics.hpp"
#include "cri/stream/mhd_lazy.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {
namespace {

// gRPC's own diagnostics go through our log, in our format. Its INFO lines are
// chatter about channels and pollers: debug for us.
void grpc_log(gpr_log_func_args* args) {
  dlog::Level level = args->severity == GPR_LOG_SEVERITY_ERROR ? dlog::Level::error : dlog::Level::debug;
  if (!dlog::enabled(level)) return;
  std::string where = fmt::format("{}:{}", args->file ? args->file : "?", args->line);
  dlog::write(level, args->message ? args->message : "", {{"component", "grpc"}, {"source", where}});
}

// One berthd per state directory: a second one would unlink the first one's socket.
UniqueFd take_instance_lock(const std::string& state_dir) {
  std::string path = path_join(state_dir, "berthd.lock");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) fail_errno("open lock file {}", path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) fail("another berthd is running with state directory {} (it holds {})", state_dir, path);
    fail_errno("lock {}", path);
  }
  return fd;
}

gid_t group_id(const std::string& group) {
  if (auto n = parse_uint(group)) return static_cast<gid_t>(*n);
  struct group gr, *res = nullptr;
  std::vector<char> buf(4096);
  if (getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &res) != 0 || !res)
    fail("grpc.socket_group: no group named \"{}\"", group);
  return res->gr_gid;
}

void remove_stale_socket(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return;
  if (!S_ISSOCK(st.st_mode)) fail("{} exists and is not a socket: refusing to replace it", path);
  if (::unlink(path.c_str()) < 0) fail_errno("remove stale socket {}", path);
}

// Builds and starts the gRPC server. The socket is born with its final mode (umask)
// so no client ever sees it more open than configured.
std::unique_ptr<grpc::Server> start_server(const Config& cfg, const std::string& socket,
                                           std::vector<grpc::Service*> services) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  for (auto* s : services) builder.RegisterService(s);
  // Every call of every service (the health service's too) is counted by one interceptor.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(make_grpc_metrics_interceptor());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  // A synchronous server with one completion queue and few pollers: handlers run on a
  // small pool capped by the quota, which keeps idle RSS low (issue 6: <= 1/4 containerd).
  grpc::ResourceQuota quota("berthd");
  quota.SetMaxThreads(static_cast<int>(cfg.max_threads));
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  mode_t old = ::umask(0777 & ~cfg.socket_mode);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old);
  if (!server) fail("serve gRPC on unix:{}: the listener could not be created (see the grpc error above)", socket);
  // grpc.health.v1: SERVING for "" and both CRI services until shutdown begins.
  if (auto* health = server->GetHealthCheckService()) {
    health->SetServingStatus(true);
    for (const char* name : {"runtime.v1.RuntimeService", "runtime.v1.ImageService"}) health->SetServingStatus(name, true);
  }
  if (::chmod(socket.c_str(), cfg.socket_mode) < 0) fail_errno("chmod {:o} {}", cfg.socket_mode, socket);
  if (!cfg.socket_group.empty() && ::chown(socket.c_str(), -1, group_id(cfg.socket_group)) < 0)
    fail_errno("chown {} to group {}", socket, cfg.socket_group);
  return server;
}

// Waits for SIGTERM or SIGINT. Under a systemd watchdog (WatchdogSec=) it wakes every
// half period and pings while the runtime answers: a deadlocked or stopped berthd stops
// pinging and systemd restarts it.
int wait_for_stop_signal(const sigset_t& set, const Runtime& runtime) {
  auto ping = watchdog_ping_interval();
  if (ping) dlog::info("systemd watchdog on", {{"ping_ms", std::to_string(ping->count())}});
  bool warned = false;
  for (;;) {
    siginfo_t info;
    int sig;
    if (ping) {
      struct timespec ts = {static_cast<time_t>(ping->count() / 1000), static_cast<long>(ping->count() % 1000) * 1000000};
      sig = ::sigtimedwait(&set, &info, &ts);
      if (sig < 0 && errno == EAGAIN) {
        bool ok = runtime.responsive(*ping / 2);
        if (ok) notify_systemd("WATCHDOG=1");
        else if (!warned) dlog::warn("runtime state locked for too long: not pinging the systemd watchdog");
        warned = !ok;
        continue;
      }
    } else {
      sig = ::sigwaitinfo(&set, &info);
    }
    if (sig < 0) {
      if (errno == EINTR) continue;
      fail_errno("sigwaitinfo");
    }
    if (sig == SIGHUP) {
      dlog::warn("SIGHUP ignored: berthd does not reload its configuration; restart it instead");
      continue;
    }
    return sig;
  }
}

// Shutdown waits for running calls; a pull can outlast the grace period. The store
// is crash-safe (a SIGKILL mid-pull is recovered at the next start), so once the
// deadline and a margin have passed the process exits without waiting any longer.
class ShutdownWatchdog {
public:
  ShutdownWatchdog(std::chrono::seconds limit, std::string socket)
      : thread_([this, limit, socket = std::move(socket)] {
          std::unique_lock lock(mu_);
          if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
          dlog::warn("calls still running after the shutdown timeout; exiting now (unfinished pulls "
                     "are cleaned up at the next start)");
          ::unlink(socket.c_str());
          notify_systemd("STATUS=forced exit after shutdown timeout");
          ::_exit(0);
        }) {}
  ~ShutdownWatchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

} // namespace

int run_daemon(const Config& cfg) {
  gpr_set_log_function(grpc_log);
  // Signals are taken synchronously by the main thread; every thread created from
  // here on (gRPC's, the store's) inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  if (int err = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); err != 0) fail_code(err, "block signals");
  ::signal(SIGPIPE, SIG_IGN);

  with_context("create state directory", [&] { mkdir_p(cfg.state_dir, 0711); });
  UniqueFd lock = take_instance_lock(cfg.state_dir);
  std::string socket = cfg.socket_path();
  // sun_path holds 107 bytes and a NUL; say so plainly rather than through gRPC's error.
  if (socket.size() > 107) fail("socket path {} is {} bytes long; unix sockets allow at most 107", socket, socket.size());
  auto slash = socket.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdir_p(socket.substr(0, slash), 0711);
  remove_stale_socket(socket);
  // From here on the socket is ours: removed however run_daemon ends (the watchdog's
  // forced exit removes it itself).
  struct SocketRemover {
    std::string path;
    ~SocketRemover() {
      if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        dlog::warn("remove socket", {{"path", path}, {"error", strerror(errno)}});
    }
  } socket_remover{socket};

  auto started = std::chrono::steady_clock::now();
  std::unique_ptr<image::ImageStore> store =
      with_context(fmt::format("open image store in {}", cfg.root), [&] { return image::ImageStore::open(cfg.store_options()); });
  auto runtime = with_context("set up pods and containers", [&] { return std::make_unique<Runtime>(cfg, *store); });
  with_context("recover pods and containers", [&] { runtime->recover(); });
  RuntimeServiceImpl runtime_service(*runtime);
  ImageServiceImpl image_service(*store, cfg.pinned_images);
  with_context("pin the configured images", [&] { image_service.reconcile_pinned(); });
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<grpc::Server> server = start_server(cfg, socket, {&runtime_service, &image_service});
  add_state_collectors(daemon_metrics(), *runtime, *store);
  std::unique_ptr<MetricsServer> metrics_server;
  if (!cfg.metrics_address.empty()) {
    metrics_server = std::make_unique<MetricsServer>(daemon_metrics().registry, cfg.metrics_address);
    auto [host, port] = split_host_port(cfg.metrics_address);
    if (!stream::sock_addr(host, port)->loopback)
      dlog::warn("metrics endpoint listens beyond loopback: anyone who reaches it reads berthd's metrics",
                 {{"address", cfg.metrics_address}});
    dlog::info("serving metrics", {{"address", cfg.metrics_address}, {"port", std::to_string(metrics_server->port())}});
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);

  notify_systemd(fmt::format("READY=1\nSTATUS=serving CRI v1 on {}\nMAINPID={}", socket, ::getpid()));
  dlog::info("serving", {{"socket", socket}, {"root", cfg.root}, {"version", BERTH_VERSION},
                         {"startup_ms", std::to_string(ms.count())}});

  int sig = wait_for_stop_signal(stop_signals, *runtime);
  dlog::info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  notify_systemd("STOPPING=1\nSTATUS=shutting down");
  {
    ShutdownWatchdog watchdog(std::chrono::seconds(cfg.shutdown_timeout_s + 5), socket);
    if (auto* health = server->GetHealthCheckService()) health->SetServingStatus(false);
    runtime->begin_shutdown();  // event streams end; containers and their shims stay
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(cfg.shutdown_timeout_s));
    server.reset();
    metrics_server.reset();  // its collectors read the runtime and the store
    runtime.reset();
    dlog::debug("gRPC server stopped; closing the image store");
    store.reset();
  }
  dlog::info("stopped");
  return 0;
}

} // namespace berth::cri
