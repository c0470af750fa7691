// berthlet: keeps the pods of static pod manifests running through a CRI endpoint.
// Configuration: --config FILE (a KubeletConfiguration), flags override it.
#include <getopt.h>
#include <malloc.h>
#include <sys/resource.h>

#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "agent/lib/agent.hpp"
#include "agent/lib/log.hpp"
#include "agent/lib/metrics.hpp"
#include "agent/lib/status_server.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "common/daemon_log.hpp"
#include "common/sd_notify.hpp"
#include "common/version.hpp"

using namespace berth::agent;

namespace {

const char kUsage[] = R"(Usage: berthlet [options]

Keeps the pods described by static pod manifests running through a CRI v1 runtime.

  --config FILE                      a KubeletConfiguration file (see berthlet(8))
  --print-config                     print the effective configuration (file, flags, defaults) and exit
  --pod-manifest-path DIR            manifest directory (repeatable; default /etc/kubernetes/manifests)
  --file-check-frequency DURATION    periodic manifest re-list (default 20s)
  --container-runtime-endpoint EP    CRI socket, unix:///path (default unix:///run/containerd/containerd.sock)
  --runtime-request-timeout DURATION deadline of one CRI call (default 2m)
  --hostname-override NAME           node name (default: the host name)
  --address IP                       status endpoint address (default 127.0.0.1)
  --read-only-port PORT              status endpoint port, 0 disables it (default 10255)
  --pod-logs-dir DIR                 container logs (default /var/log/pods)
  --root-dir DIR                     emptyDir volumes (default /var/lib/berthlet)
  --cgroup-root PATH                 pods live under PATH/kubepods (default /)
  --cgroup-driver cgroupfs|systemd   how pod cgroups are made; as the runtime's (default cgroupfs)
  --v, --debug                       debug log
  --logging-format text|json         log lines as logfmt (default) or JSON, as berthd's
  --version, --help
)";

} // namespace

int main(int argc, char** argv) {
  enum {
    kConfig = 256, kManifest, kFileCheck, kEndpoint, kTimeout, kNode, kAddress, kPort, kLogs, kRoot, kCgroup, kCgroupDriver,
    kDebug, kLogFormat, kVersion, kHelp, kPrintConfig
  };
  static const struct option opts[] = {
      {"config", required_argument, nullptr, kConfig},
      {"pod-manifest-path", required_argument, nullptr, kManifest},
      {"file-check-frequency", required_argument, nullptr, kFileCheck},
      {"container-runtime-endpoint", required_argument, nullptr, kEndpoint},
      {"runtime-request-timeout", required_argument, nullptr, kTimeout},
      {"hostname-override", required_argument, nullptr, kNode},
      {"node-name", required_argument, nullptr, kNode},
      {"address", required_argument, nullptr, kAddress},
      {"read-only-port", required_argument, nullptr, kPort},
      {"pod-logs-dir", required_argument, nullptr, kLogs},
      {"root-dir", required_argument, nullptr, kRoot},
      {"cgroup-root", required_argument, nullptr, kCgroup},
      {"cgroup-driver", required_argument, nullptr, kCgroupDriver},
      {"v", optional_argument, nullptr, kDebug},
      {"debug", no_argument, nullptr, kDebug},
      {"logging-format", required_argument, nullptr, kLogFormat},
      {"version", no_argument, nullptr, kVersion},
      {"help", no_argument, nullptr, kHelp},
      {"print-config", no_argument, nullptr, kPrintConfig},
      {nullptr, 0, nullptr, 0}};
  // systemd's notify socket and watchdog are berthlet's alone, not its probes' or hooks'.
  berth::claim_systemd_notify_environment();
  // Blocked before any thread exists (gRPC, the status endpoint, pod workers), so that
  // only the event loop's signalfd receives them.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // One malloc arena per pod worker thread would cost far more than the contention saves.
  mallopt(M_ARENA_MAX, 2);
  // The soft limit on open files up to the hard one, as Go programs (the kubelet) do at
  // start: systemd's default soft limit is 1024. berthlet uses poll/epoll, never select.
  struct rlimit nofile;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  try {
    // The config file is read first wherever --config appears; flags then override it.
    std::string config_path;
    for (int i = 1; i < argc; i++) {
      std::string a = argv[i];
      if (a == "--config" && i + 1 < argc) config_path = argv[i + 1];
      else if (a.rfind("--config=", 0) == 0) config_path = a.substr(9);
    }
    ConfigReport report;
    Config cfg = config_path.empty() ? Config{} : load_config(config_path, &report);
    bool manifests_from_flags = false;
    bool debug = cfg.logging_verbosity >= 4;
    auto log_format = *berth::dlog::parse_format(cfg.logging_format);
    bool print_config = false;
    int c;
    while ((c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1) {
      std::string v = optarg ? optarg : "";
      try {
      switch (c) {
      case kConfig: break;
      case kManifest:
        if (!manifests_from_flags) cfg.static_pod_paths.clear();
        manifests_from_flags = true;
        cfg.static_pod_paths.push_back(v);
        break;
      case kFileCheck: cfg.file_check_frequency = parse_duration(v); break;
      case kEndpoint: cfg.runtime_endpoint = v; break;
      case kTimeout: cfg.runtime_request_timeout = parse_duration(v); break;
      case kNode: cfg.node_name = v; break;
      case kAddress: cfg.address = v; break;
      case kPort: {
        auto p = berth::parse_int(v);
        if (!p || *p < 0 || *p > 65535) berth::fail("--read-only-port {:?}: expected 0-65535", v);
        cfg.read_only_port = static_cast<int>(*p);
        break;
      }
      case kLogs: cfg.pod_logs_dir = v; break;
      case kRoot: cfg.root_dir = v; break;
      case kCgroup: cfg.cgroup_root = v; break;
      case kCgroupDriver: cfg.cgroup_driver = parse_cgroup_driver(v); break;
      case kDebug: debug = true; cfg.logging_verbosity = std::max(cfg.logging_verbosity, 4); break;
      case kLogFormat: {
        auto f = berth::dlog::parse_format(v);
        if (!f) berth::fail("--logging-format {:?}: expected text or json", v);
        log_format = *f;
        cfg.logging_format = v;
        break;
      }
      case kVersion: std::fputs(berth::version_text("berthlet").c_str(), stdout); return 0;
      case kHelp: std::fputs(kUsage, stdout); return 0;
      case kPrintConfig: print_config = true; break;
      default: std::fputs(kUsage, stderr); return 2;
      }
      } catch (const berth::Error& e) {
        throw berth::UsageError(e.what()); // a bad flag value
      }
    }
    if (optind < argc) berth::fail_usage("unexpected argument {:?} (see berthlet --help)", argv[optind]);
    berth::dlog::configure(debug ? berth::dlog::Level::debug : berth::dlog::Level::info, log_format);
    berth::dlog::route_common_log(); // the common code's messages, into berthlet's log
    finalize_config(cfg);
    for (auto& line : report.lines(config_path)) log_warn("{}", line); // stderr, also with --print-config
    if (print_config) {
      std::fputs(config_to_yaml(cfg).c_str(), stdout);
      return 0;
    }
    // libcurl (7.84+) initialises itself, thread-safely, at the first httpGet probe or hook:
    // a node without them never loads its TLS stack's state.
    Agent agent(cfg);
    std::unique_ptr<StatusServer> server;
    if (cfg.read_only_port != 0) {
      add_status_collector(agent_metrics(), agent.store());
      server = std::make_unique<StatusServer>(agent.store(), cfg.address, cfg.read_only_port);
      log_info("status endpoint on http://{}:{}/pods", cfg.address, server->port());
    }
    agent.run([] { berth::notify_systemd("READY=1"); });
    berth::notify_systemd("STOPPING=1");
    return 0;
  } catch (const berth::UsageError& e) {
    std::fprintf(stderr, "berthlet: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    log_error("berthlet: {}", e.what());
    return 1;
  }
}
