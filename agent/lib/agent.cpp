#include "agent/lib/agent.hpp"

#include <arpa/inet.h>
#include <malloc.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <set>

#include "agent/lib/cri_convert.hpp"
#include "agent/lib/log.hpp"
#include "agent/lib/metrics.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/sd_notify.hpp"

namespace berth::agent {
namespace {

// How long berthlet waits at shutdown for its status sinks to deliver what they hold.
constexpr std::chrono::milliseconds kSinkFlushAtShutdown{3000};

UniqueFd make_timer(std::chrono::milliseconds period) {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!fd) fail_errno("timerfd_create");
  struct itimerspec its = {};
  its.it_interval.tv_sec = period.count() / 1000;
  its.it_interval.tv_nsec = (period.count() % 1000) * 1000000;
  its.it_value = its.it_interval;
  if (::timerfd_settime(fd.get(), 0, &its, nullptr) != 0) fail_errno("timerfd_settime");
  return fd;
}

void drain_timer(int fd) {
  uint64_t n;
  ssize_t r = ::read(fd, &n, sizeof n);
  (void)r;
}

} // namespace

std::string detect_host_ip() {
  struct ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return "127.0.0.1";
  std::string found;
  for (auto* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
      continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    found = buf;
    break;
  }
  ::freeifaddrs(ifs);
  return found.empty() ? "127.0.0.1" : found;
}

Agent::Agent(Config config)
    : config_(std::move(config)), cri_(config_.runtime_endpoint, config_.runtime_request_timeout),
      watcher_(config_.static_pod_paths), log_rotator_(config_, cri_), image_gc_(config_, cri_) {
  auto host_ip = detect_host_ip();
  ctx_ = std::make_unique<WorkerContext>(config_, cri_, store_, host_ip);
  sinks_ = std::make_unique<StatusSinks>(config_);
  if (!sinks_->empty()) {
    store_.set_observer(sinks_.get());
    node_status_ = std::make_unique<NodeStatusBuilder>(config_, host_ip);
  }
  health_.endpoint = config_.runtime_endpoint;
  // As the kubelet's PLEG check (3 min there, for a 1 s relist of many containers): the
  // relist has not succeeded for this long although every call has a deadline.
  store_.set_relist_threshold(std::max(std::chrono::milliseconds(60000), 3 * config_.relist_period));
  store_.set_runtime_health(health_);
}

Agent::~Agent() {
  log_rotation_thread_.reset();
  image_gc_thread_.reset();
  node_status_thread_.reset();
  // Pods keep running: workers only stop their threads (terminating ones finish their work).
  for (auto& [uid, w] : workers_) w->shutdown();
  workers_.clear();
  terminating_.clear();
  // What the sinks hold goes out now if their endpoints take it within the bound.
  store_.set_observer(nullptr);
  sinks_->shutdown(kSinkFlushAtShutdown);
}

void Agent::report_node() {
  if (!node_status_) return;
  RuntimeInfo info;
  {
    std::lock_guard lock(runtime_info_mu_);
    info = runtime_info_;
  }
  auto health = store_.healthz(true);
  info.ready = health.ok;
  if (!health.ok) {
    // The failed checks, on one line, as the Ready condition's message.
    for (auto& line : split(health.body, '\n'))
      if (line.starts_with("[-]")) info.not_ready_reason += (info.not_ready_reason.empty() ? "" : "; ") + line.substr(3);
  }
  sinks_->node_changed(node_status_->build(read_host_stats(config_.root_dir), info, k8s_time_now()));
}

// The sinks learn which pods exist now, to forget those removed while berthlet was down.
void Agent::report_pod_set() {
  auto pods = nlohmann::json::array();
  for (auto& [path, src] : sources_) {
    if (src.uid.empty()) continue;
    auto slash = src.full_name.find('/');
    pods.push_back({{"namespace", src.full_name.substr(0, slash)},
                    {"name", src.full_name.substr(slash + 1)},
                    {"uid", src.uid}});
  }
  sinks_->pods_running(std::move(pods));
}

void Agent::start_worker(Manifest m) {
  auto uid = m.pod.uid;
  // The same pod coming back (a manifest restored right after its removal) waits until
  // its old worker has finished tearing it down, as the kubelet's pod workers do.
  for (auto& t : terminating_)
    if (t->uid() == uid) {
      pending_[uid] = std::move(m);
      return;
    }
  workers_[uid] = std::make_unique<PodWorker>(*ctx_, std::move(m));
  count_workers();
}

void Agent::apply_manifest(const std::string& path) {
  Manifest m;
  try {
    m = load_manifest(path, config_.node_name);
    for (auto& [other, src] : sources_)
      if (other != path && !src.uid.empty() && src.full_name == m.full_name)
        fail("{}: pod {} is already defined by {}", path, m.full_name, other);
  } catch (const std::exception& e) {
    // As the kubelet's file source: a file that no longer parses no longer defines a pod.
    log_error("manifest {}", e.what());
    store_.record_event({"Warning", "FailedManifest", fmt::format("manifest {}", e.what()),
                        {{"kind", "Node"}, {"name", config_.node_name}}});
    drop_manifest(path);
    sources_[path] = {"", ""};
    store_.set_manifest(path, "", e.what());
    return;
  }
  auto it = sources_.find(path);
  if (it != sources_.end() && it->second.uid == m.pod.uid) return; // same content: nothing to do
  drop_manifest(path);
  log_info("manifest {}: pod {} uid {}", path, m.full_name, m.pod.uid);
  sources_[path] = {m.pod.uid, m.full_name};
  store_.set_manifest(path, m.pod.uid, "");
  start_worker(std::move(m));
}

void Agent::drop_manifest(const std::string& path) {
  auto it = sources_.find(path);
  if (it == sources_.end()) return;
  auto uid = it->second.uid;
  auto name = it->second.full_name;
  sources_.erase(it);
  store_.remove_manifest(path);
  pending_.erase(uid);
  auto w = workers_.find(uid);
  if (uid.empty() || w == workers_.end()) return;
  log_info("pod {}: manifest {} removed or replaced, stopping the pod", name, path);
  w->second->terminate();
  terminating_.push_back(std::move(w->second));
  workers_.erase(w);
  count_workers();
  fingerprints_.erase(uid);
}

void Agent::scan_manifests() {
  scanned_ = true;
  for (auto& ch : watcher_.scan()) {
    if (ch.kind == FileChange::Kind::removed) {
      log_info("manifest {} removed", ch.path);
      drop_manifest(ch.path);
    } else {
      apply_manifest(ch.path);
    }
  }
}

void Agent::runtime_down(const std::string& error) {
  auto now = RuntimeHealth::Clock::now();
  // Logged at the first failure (also when the runtime was never reachable: a wrong
  // endpoint must not fail silently), when the reason changes, and once a minute after.
  bool changed = runtime_up_ || !down_logged_ || error != health_.relist_error;
  if (changed || now - last_down_log_ >= std::chrono::minutes(1)) {
    log_error("runtime {} {}: {}", config_.runtime_endpoint,
              !ever_up_ ? "unavailable (no pod can run until it answers)" : changed ? "unavailable" : "still unavailable",
              error);
    last_down_log_ = now;
    down_logged_ = true;
  }
  bool was_up = runtime_up_;
  runtime_up_ = false;
  health_.relist_ok = false;
  health_.relist_error = error;
  health_.status_ok = false;
  health_.status_error = "";
  store_.set_runtime_health(health_);
  if (was_up) report_node(); // Ready is false now: said at once, not at the next period
}

// The runtime's Status (RuntimeReady, NetworkReady), every 5 s as the kubelet asks it.
void Agent::check_runtime_status(bool force) {
  auto now = RuntimeHealth::Clock::now();
  if (!force && now - last_status_call_ < std::chrono::seconds(5)) return;
  last_status_call_ = now;
  std::string problems;
  try {
    auto st = cri_.status();
    health_.status_ok = true;
    health_.status_error.clear();
    health_.conditions.clear();
    for (auto& c : st.conditions()) {
      health_.conditions.push_back({c.type(), c.reason(), c.message(), c.status()});
      if (!c.status() && (c.type() == "RuntimeReady" || c.type() == "NetworkReady"))
        problems += fmt::format("{}{}=false ({}: {})", problems.empty() ? "" : ", ", c.type(), c.reason(), c.message());
    }
    for (auto* want : {"RuntimeReady", "NetworkReady"}) {
      bool seen = false;
      for (auto& c : health_.conditions) seen |= c.type == want;
      if (!seen) problems += fmt::format("{}no {} condition", problems.empty() ? "" : ", ", want);
    }
  } catch (const std::exception& e) {
    health_.status_ok = false;
    health_.status_error = e.what();
    health_.conditions.clear();
    problems = fmt::format("Status: {}", e.what());
  }
  if (problems != status_problems_) {
    if (!problems.empty()) log_error("runtime {} not ready: {}", config_.runtime_endpoint, problems);
    else if (!status_problems_.empty()) log_info("runtime {} ready", config_.runtime_endpoint);
    status_problems_ = problems;
  }
}

void Agent::relist() {
  std::vector<cri::PodSandbox> sandboxes;
  std::vector<cri::Container> containers;
  // The event loop waits for these: a hung runtime may hold it up this long, not for the
  // full request timeout (manifests are handled by the same thread).
  auto deadline = std::min(cri_.request_timeout(), std::chrono::milliseconds(30000));
  try {
    sandboxes = cri_.list_pod_sandboxes("", deadline);
    containers = cri_.list_containers("", deadline);
  } catch (const std::exception& e) {
    runtime_down(e.what());
    return;
  }
  if (!runtime_up_) {
    try {
      auto v = cri_.version();
      ctx_->set_runtime_name(v.runtime_name());
      std::lock_guard lock(runtime_info_mu_);
      runtime_info_.name = v.runtime_name();
      runtime_info_.version = v.runtime_version();
    } catch (const std::exception& e) {
      runtime_down(e.what());
      return;
    }
    log_info("runtime {} ({}) connected", config_.runtime_endpoint, ctx_->runtime_name());
    runtime_up_ = true;
    ever_up_ = true;
    down_logged_ = false;
    ready_reported_ = false; // the node status goes out after this relist (Ready again)
    for (auto& [uid, w] : workers_) w->notify();
    check_runtime_status(true);
  } else {
    check_runtime_status(false);
  }
  health_.relist_ok = true;
  health_.relist_error.clear();
  health_.last_relist_ok = RuntimeHealth::Clock::now();
  store_.set_runtime_health(health_);
  if (!ready_reported_ && health_.status_ok) {
    ready_reported_ = true;
    report_node();
  }
  std::map<std::string, std::string> now;
  for (auto& s : sandboxes) {
    auto uid = s.labels().find(kPodUidLabel);
    if (uid == s.labels().end()) continue;
    now[uid->second] += fmt::format("s{}:{};", s.id(), static_cast<int>(s.state()));
  }
  std::set<std::string> running;
  for (auto& c : containers) {
    if (c.state() == cri::CONTAINER_RUNNING) running.insert(c.id());
    auto uid = c.labels().find(kPodUidLabel);
    if (uid == c.labels().end()) continue;
    now[uid->second] += fmt::format("c{}:{};", c.id(), static_cast<int>(c.state()));
  }
  log_rotator_.set_running(std::move(running));
  for (auto& [uid, w] : workers_) {
    auto& fp = now[uid];
    auto old = fingerprints_.find(uid);
    if (old == fingerprints_.end() || old->second != fp) w->notify();
    fingerprints_[uid] = fp;
  }
  if (!orphans_collected_ && scanned_) {
    // Once, after the first manifest scan: pods that berthlet started for manifests that
    // are gone now (removed while it was down) are stopped and removed.
    orphans_collected_ = true;
    for (auto& s : sandboxes) {
      auto uid = s.labels().find(kPodUidLabel);
      auto src = s.annotations().find(kConfigSourceAnnotation);
      if (uid == s.labels().end() || src == s.annotations().end() || src->second != "file") continue;
      if (workers_.count(uid->second)) continue;
      bool pending = false;
      for (auto& t : terminating_) pending |= t->uid() == uid->second;
      if (pending) continue;
      auto name = s.metadata().namespace_() + "/" + s.metadata().name();
      log_info("pod {}: no manifest defines it any more, stopping it", name);
      terminating_.push_back(std::make_unique<PodWorker>(*ctx_, uid->second, name));
    }
  }
}

void Agent::count_workers() {
  agent_metrics().pod_workers.set(static_cast<double>(workers_.size() + terminating_.size()));
}

void Agent::reap_workers() {
  std::erase_if(terminating_, [](const std::unique_ptr<PodWorker>& w) { return w->finished(); });
  count_workers();
  for (auto it = pending_.begin(); it != pending_.end();) {
    bool busy = false;
    for (auto& t : terminating_) busy |= t->uid() == it->first;
    if (busy) {
      ++it;
      continue;
    }
    auto m = std::move(it->second);
    it = pending_.erase(it);
    start_worker(std::move(m));
  }
}

void Agent::run(const std::function<void()>& on_ready) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sigfd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!sigfd) fail_errno("signalfd");
  auto scan_timer = make_timer(config_.file_check_frequency);
  auto relist_timer = make_timer(config_.relist_period);
  // systemd's watchdog (WatchdogSec=) is pinged from this loop: a loop that is stuck
  // (longer than a relist's 30 s deadline) gets berthlet restarted.
  auto watchdog = watchdog_ping_interval();
  auto watchdog_timer = make_timer(watchdog.value_or(std::chrono::hours(24)));
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) fail_errno("epoll_create1");
  for (int fd : {sigfd.get(), scan_timer.get(), relist_timer.get(), watcher_.fd(), watchdog_timer.get()}) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) fail_errno("epoll_ctl");
  }
  relist(); // learn the runtime's name before the first pods start
  scan_manifests();
  report_pod_set();
  relist();
  if (on_ready) on_ready();
  log_rotation_thread_ = std::make_unique<PeriodicThread>("log-rotation", config_.container_log_monitor_interval,
                                                          [this] { log_rotator_.run_once(); });
  image_gc_thread_ = std::make_unique<PeriodicThread>("image-gc", config_.image_gc_period,
                                                      [this] { image_gc_.collect(); });
  if (node_status_)
    node_status_thread_ = std::make_unique<PeriodicThread>("node-status", config_.node_status_update_frequency,
                                                           [this] { report_node(); });
  if (runtime_up_)
    log_info("berthlet ready: node {}, manifests in {}, runtime {}", config_.node_name,
             fmt::join(config_.static_pod_paths, ", "), config_.runtime_endpoint);
  else
    log_error("berthlet started: node {}, manifests in {}, but runtime {} is not reachable (pods wait for it; "
              "/healthz fails until it answers)",
              config_.node_name, fmt::join(config_.static_pod_paths, ", "), config_.runtime_endpoint);
  while (true) {
    struct epoll_event evs[8];
    int n = ::epoll_wait(ep.get(), evs, 8, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == sigfd.get()) {
        struct signalfd_siginfo si;
        if (::read(sigfd.get(), &si, sizeof si) == sizeof si && si.ssi_signo != SIGHUP) {
          log_info("berthlet: signal {}, shutting down (pods keep running)", si.ssi_signo);
          return;
        }
        scan_manifests(); // SIGHUP: look at the manifests now
      } else if (fd == watcher_.fd()) {
        watcher_.drain();
        scan_manifests();
      } else if (fd == scan_timer.get()) {
        drain_timer(fd);
        scan_manifests();
      } else if (fd == watchdog_timer.get()) {
        drain_timer(fd);
        if (watchdog) notify_systemd("WATCHDOG=1");
      } else if (fd == relist_timer.get()) {
        drain_timer(fd);
        relist();
        reap_workers();
        // Pod syncs free what they allocated, but malloc keeps the pages; hand them back
        // now and then so an idle node's berthlet stays small.
        if (++relists_ % 10 == 0) malloc_trim(0);
      }
    }
  }
}

} // namespace berth::agent
