#include "cri/server/metrics.hpp"

#include <dirent.h>
#include <sys/statvfs.h>

#include <cstring>
#include <set>

#include <google/protobuf/descriptor.h>

#include "common/daemon_log.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/image_store.hpp"
#include "cri/server/runtime.hpp"
#include "cri/stream/mhd_lazy.hpp"

namespace berth::cri {

using metrics::Labels;

DaemonMetrics::DaemonMetrics()
    : grpc_started(registry.counter("grpc_server_started_total", "Total number of RPCs started on the server.",
                                    {"grpc_type", "grpc_service", "grpc_method"})),
      grpc_handled(registry.counter("grpc_server_handled_total",
                                    "Total number of RPCs completed on the server, regardless of success or failure.",
                                    {"grpc_type", "grpc_service", "grpc_method", "grpc_code"})),
      grpc_seconds(registry.histogram("grpc_server_handling_seconds",
                                      "Histogram of response latency (seconds) of gRPC that had been application-level "
                                      "handled by the server.",
                                      {"grpc_type", "grpc_service", "grpc_method"}, metrics::rpc_latency_buckets())),
      pulls(registry.counter("berthd_image_pulls_total", "Image pulls finished, by result (success or failure).",
                             {"result"})),
      pull_bytes(registry.counter("berthd_image_pull_bytes_total",
                                  "Bytes of blobs (layers and configs) downloaded by image pulls.")
                     .with({})),
      pull_seconds(registry.histogram("berthd_image_pull_duration_seconds", "Duration of successful image pulls.", {},
                                      metrics::long_latency_buckets())
                       .with({})),
      cni_seconds(registry.histogram("berthd_cni_operation_duration_seconds",
                                     "Duration of CNI operations on pod networks (ADD, DEL).", {"operation"},
                                     metrics::rpc_latency_buckets())),
      cni_errors(registry.counter("berthd_cni_operation_errors_total", "CNI operations that failed.", {"operation"})) {
  metrics::add_process_collector(registry);
}

DaemonMetrics& daemon_metrics() {
  static DaemonMetrics m;
  return m;
}

namespace {

uint64_t count_subdirectories(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  uint64_t n = 0;
  while (struct dirent* e = ::readdir(d))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') n++;
  ::closedir(d);
  return n;
}

} // namespace

void add_state_collectors(DaemonMetrics& m, const Runtime& runtime, image::ImageStore& store) {
  m.registry.add_collector([&runtime](metrics::Writer& w) {
    uint64_t pods[3] = {}, ctrs[4] = {};
    for (const auto& s : runtime.sandboxes()) {
      std::lock_guard lk(s->mu);
      pods[static_cast<int>(s->rec.phase) % 3]++;
    }
    for (const auto& c : runtime.containers()) {
      std::lock_guard lk(c->mu);
      ctrs[static_cast<int>(c->rec.phase) % 4]++;
    }
    w.header("berthd_pod_sandboxes", "Pod sandboxes berthd knows, by state.", "gauge");
    for (auto p : {SandboxPhase::creating, SandboxPhase::ready, SandboxPhase::notready})
      w.sample("berthd_pod_sandboxes", {{"state", phase_name(p)}}, pods[static_cast<int>(p)]);
    w.header("berthd_containers", "Containers berthd knows, by state.", "gauge");
    for (auto p : {ContainerPhase::creating, ContainerPhase::created, ContainerPhase::running, ContainerPhase::exited})
      w.sample("berthd_containers", {{"state", phase_name(p)}}, ctrs[static_cast<int>(p)]);
    // A shim removes its state directory when it exits.
    w.header("berthd_shims", "Shims serving containers (their state directories).", "gauge");
    w.sample("berthd_shims", {}, count_subdirectories(runtime.shim().state_root));
  });

  // Snapshot space: the filesystem's figures each scrape (one statvfs); the bytes the
  // snapshots use at most every 30 s, from the store's usage (committed layers cached).
  struct UsageCache {
    std::mutex mu;
    std::chrono::steady_clock::time_point at{};
    image::FsUsage usage;
  };
  auto cache = std::make_shared<UsageCache>();
  m.registry.add_collector([&store, cache](metrics::Writer& w) {
    image::FsUsage u;
    {
      std::lock_guard lk(cache->mu);
      auto now = std::chrono::steady_clock::now();
      if (cache->at == std::chrono::steady_clock::time_point{} || now - cache->at > std::chrono::seconds(30)) {
        try {
          cache->usage = store.usage();
        } catch (const std::exception& e) {
          dlog::warn("metrics: snapshot usage", {{"error", e.what()}});
        }
        cache->at = now;
      }
      u = cache->usage;
    }
    w.header("berthd_snapshots_used_bytes", "Bytes used by snapshots (refreshed at most every 30 s).", "gauge");
    w.sample("berthd_snapshots_used_bytes", {}, u.used_bytes);
    w.header("berthd_snapshots_inodes_used", "Inodes used by snapshots (refreshed at most every 30 s).", "gauge");
    w.sample("berthd_snapshots_inodes_used", {}, u.inodes_used);
    struct statvfs sv;
    if (!u.mountpoint.empty() && ::statvfs(u.mountpoint.c_str(), &sv) == 0) {
      Labels l = {{"mountpoint", u.mountpoint}};
      w.header("berthd_snapshots_filesystem_size_bytes", "Size of the filesystem holding the snapshots.", "gauge");
      w.sample("berthd_snapshots_filesystem_size_bytes", l, static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize);
      w.header("berthd_snapshots_filesystem_avail_bytes", "Bytes available to berthd on that filesystem.", "gauge");
      w.sample("berthd_snapshots_filesystem_avail_bytes", l, static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize);
    }
  });
}

// ---- gRPC interceptor ---------------------------------------------------------------

namespace {

const char* code_name(grpc::StatusCode c) {
  static const char* const names[] = {"OK",        "Canceled",          "Unknown",           "InvalidArgument",
                                      "DeadlineExceeded", "NotFound",   "AlreadyExists",     "PermissionDenied",
                                      "ResourceExhausted", "FailedPrecondition", "Aborted",  "OutOfRange",
                                      "Unimplemented", "Internal",      "Unavailable",       "DataLoss",
                                      "Unauthenticated"};
  int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? names[i] : "Unknown";
}

const char* type_name(grpc::experimental::ServerRpcInfo::Type t) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (t) {
    case Type::UNARY: return "unary";
    case Type::CLIENT_STREAMING: return "client_stream";
    case Type::SERVER_STREAMING: return "server_stream";
    case Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unary";
}

// "/pkg.Service/Method" of the services berthd serves, from the generated descriptors.
bool known_method(std::string_view service, std::string_view method) {
  static const std::set<std::string, std::less<>> known = [] {
    std::set<std::string, std::less<>> s;
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    for (const char* name : {"runtime.v1.RuntimeService", "runtime.v1.ImageService"})
      if (const auto* svc = pool->FindServiceByName(name))
        for (int i = 0; i < svc->method_count(); i++) s.insert(std::string(name) + "/" + svc->method(i)->name());
    s.insert("grpc.health.v1.Health/Check");
    s.insert("grpc.health.v1.Health/Watch");
    return s;
  }();
  std::string key = std::string(service) + "/" + std::string(method);
  return known.count(key) > 0;
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
public:
  explicit MetricsInterceptor(grpc::experimental::ServerRpcInfo* info) : start_(std::chrono::steady_clock::now()) {
    std::string_view full = info->method() ? info->method() : "";
    if (!full.empty() && full[0] == '/') full.remove_prefix(1);
    auto slash = full.find('/');
    if (slash != std::string_view::npos && known_method(full.substr(0, slash), full.substr(slash + 1))) {
      service_ = full.substr(0, slash);
      method_ = full.substr(slash + 1);
    } else {
      service_ = method_ = "unknown";
    }
    type_ = type_name(info->type());
    daemon_metrics().grpc_started.with({type_, service_, method_}).inc();
  }
  ~MetricsInterceptor() override {
    if (!done_) record(grpc::StatusCode::CANCELLED);  // ended without a status sent
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS))
      record(methods->GetSendStatus().error_code());
    methods->Proceed();
  }

private:
  void record(grpc::StatusCode code) {
    if (done_) return;
    done_ = true;
    auto& m = daemon_metrics();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    m.grpc_handled.with({type_, service_, method_, code_name(code)}).inc();
    m.grpc_seconds.with({type_, service_, method_}).observe(s);
  }

  std::chrono::steady_clock::time_point start_;
  std::string service_, method_;
  const char* type_;
  bool done_ = false;
};

class MetricsInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info);
  }
};

} // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> make_grpc_metrics_interceptor() {
  return std::make_unique<MetricsInterceptorFactory>();
}

// ---- HTTP endpoint --------------------------------------------------------------------

std::pair<std::string, uint16_t> split_host_port(const std::string& address) {
  std::string host;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    auto close = address.find("]:");
    if (close == std::string::npos) fail_code(EINVAL, "{:?}: expected [ipv6]:port", address);
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon)
      fail_code(EINVAL, "{:?}: expected host:port (an IP address and a port)", address);
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  auto n = parse_uint(port);
  if (!n || *n > 65535) fail_code(EINVAL, "{:?}: the port is not a number up to 65535", address);
  if (!stream::sock_addr(host, 0))
    fail_code(EINVAL, "{:?}: {:?} is not an IP address", address, host);
  return {host, static_cast<uint16_t>(*n)};
}

namespace {

const stream::MhdApi* mhd_api() {
  std::string error;
  const stream::MhdApi* api = stream::MhdLibrary::instance().acquire(error);
  if (!api) fail("metrics endpoint: cannot load {}: {}", stream::MhdLibrary::instance().soname(), error);
  return api;
}

MHD_Result reply(const stream::MhdApi& mhd, MHD_Connection* conn, unsigned code, const std::string& body,
                 const char* type) {
  MHD_Response* r = mhd.create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  mhd.add_response_header(r, "Content-Type", type);
  MHD_Result ret = mhd.queue_response(conn, code, r);
  mhd.destroy_response(r);
  return ret;
}

MHD_Result handle(void* cls, MHD_Connection* conn, const char* url, const char* method, const char*, const char*,
                  size_t* upload_size, void**) noexcept {
  auto& registry = *static_cast<const metrics::Registry*>(cls);
  const stream::MhdApi& mhd = stream::MhdLibrary::instance().api();
  if (*upload_size) return MHD_NO;  // a body on GET: drop the connection
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0)
    return reply(mhd, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "text/plain");
  if (std::strcmp(url, "/metrics") != 0) return reply(mhd, conn, MHD_HTTP_NOT_FOUND, "404 page not found\n", "text/plain");
  try {
    return reply(mhd, conn, MHD_HTTP_OK, registry.render(), metrics::kContentType);
  } catch (const std::exception& e) {
    return reply(mhd, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, std::string(e.what()) + "\n", "text/plain");
  }
}

} // namespace

MetricsServer::MetricsServer(const metrics::Registry& registry, const std::string& address) : registry_(registry) {
  auto [host, port] = split_host_port(address);
  auto addr = stream::sock_addr(host, port);
  if (!addr) fail_code(EINVAL, "metrics endpoint: {:?} is not an IP address", host);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (addr->v6) flags |= MHD_USE_IPv6;
  const stream::MhdApi* mhd = mhd_api();
  daemon_ = mhd->start_daemon(flags, port, nullptr, nullptr, &handle, const_cast<metrics::Registry*>(&registry_),
                              MHD_OPTION_EXTERNAL_LOGGER, &stream::mhd_log, const_cast<char*>("metrics endpoint"),
                              MHD_OPTION_SOCK_ADDR, addr->get(),
                              MHD_OPTION_CONNECTION_LIMIT, kMaxConnections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              kMaxConnections, MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutSeconds,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(16 * 1024), MHD_OPTION_END);
  if (!daemon_) {
    stream::MhdLibrary::instance().release();
    fail("metrics endpoint: cannot listen on {} (in use?)", address);
  }
  const MHD_DaemonInfo* info = mhd->get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  port_ = info ? info->port : port;
}

MetricsServer::~MetricsServer() {
  if (daemon_) {
    stream::MhdLibrary::instance().api().stop_daemon(daemon_);
    stream::MhdLibrary::instance().release();
  }
}

} // namespace berth::cri
