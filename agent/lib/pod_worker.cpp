#include "agent/lib/pod_worker.hpp"

#include <algorithm>

#include "agent/lib/cri_convert.hpp"
#include "agent/lib/log.hpp"
#include "agent/lib/pod_cgroup.hpp"
#include "agent/lib/volumes.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::agent {
namespace {

constexpr auto kResync = std::chrono::seconds(60);

int64_t wall_now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

} // namespace

// A wall-clock instant from the runtime as a point on the steady clock.
PodWorker::Clock::time_point PodWorker::steady_from_wall(int64_t wall_ns) {
  auto age = std::chrono::nanoseconds(wall_now_ns() - wall_ns);
  return PodWorker::Clock::now() - std::max(age, std::chrono::nanoseconds(0));
}

PodWorker::PodWorker(WorkerContext& ctx, Manifest manifest)
    : ctx_(ctx), manifest_(std::move(manifest)), uid_(manifest_->pod.uid), full_name_(manifest_->full_name) {
  thread_ = std::thread([this] { run(); });
}

PodWorker::PodWorker(WorkerContext& ctx, std::string uid, std::string full_name)
    : ctx_(ctx), uid_(std::move(uid)), full_name_(std::move(full_name)) {
  stop_ = Stop::terminate;
  thread_ = std::thread([this] { run(); });
}

PodWorker::~PodWorker() {
  shutdown();
  if (thread_.joinable()) thread_.join();
}

void PodWorker::notify() {
  std::lock_guard lock(mu_);
  dirty_ = true;
  cv_.notify_one();
}

void PodWorker::terminate() {
  std::lock_guard lock(mu_);
  stop_ = Stop::terminate;
  cv_.notify_one();
}

void PodWorker::shutdown() {
  std::lock_guard lock(mu_);
  if (stop_ == Stop::none) stop_ = Stop::shutdown;
  abandon_ = true;
  cv_.notify_one();
}

std::string PodWorker::pod_ref() const { return fmt::format("pod={} uid={}", full_name_, uid_); }

PodWorker::Clock::time_point PodWorker::next_deadline() const {
  auto t = std::min({Clock::now() + kResync, backoff_wake_, error_wake_});
  for (auto& [id, tr] : probes_)
    for (auto* p : {&tr.startup, &tr.liveness, &tr.readiness})
      if (*p) t = std::min(t, (*p)->next_run());
  return t;
}

void PodWorker::run() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      auto deadline = next_deadline();
      cv_.wait_until(lock, deadline, [&] { return dirty_ || stop_ != Stop::none; });
      if (stop_ == Stop::shutdown) break;
      if (stop_ == Stop::terminate) {
        lock.unlock();
        kill_pod();
        break;
      }
      dirty_ = false;
    }
    try {
      sync();
      error_wake_ = Clock::time_point::max();
      error_delay_ = std::chrono::milliseconds(0);
    } catch (const std::exception& e) {
      // The runtime may be restarting: retry soon, then less often (up to 10 s).
      error_delay_ = std::clamp(error_delay_ * 2, std::chrono::milliseconds(200), std::chrono::milliseconds(10000));
      error_wake_ = Clock::now() + error_delay_;
      log_error("sync {}: {}", pod_ref(), e.what());
    }
  }
  finished_ = true;
}

void PodWorker::sync() {
  backoff_wake_ = Clock::time_point::max();
  view_.waiting.clear();
  auto sandboxes = ctx_.cri.list_pod_sandboxes(uid_);
  std::sort(sandboxes.begin(), sandboxes.end(), [](auto& a, auto& b) { return a.created_at() > b.created_at(); });
  bool fresh = ensure_sandbox(sandboxes);
  // A sandbox made just now has no containers yet: one list call less on the way to running.
  load_instances(fresh ? std::vector<cri::Container>{} : ctx_.cri.list_containers(uid_));
  if (view_.sandbox_ready && !terminal_) {
    if (sync_init_containers()) sync_containers();
    run_probes();
  }
  publish();
  // A pod that ran to completion (restartPolicy Never/OnFailure) keeps no sandbox.
  if (last_status_ && (last_status_->phase == "Succeeded" || last_status_->phase == "Failed") && !terminal_) {
    terminal_ = true;
    log_info("pod {}: completed ({}), stopping its sandbox", full_name_, last_status_->phase);
    if (!sandbox_id_.empty()) ctx_.cri.stop_pod_sandbox(sandbox_id_);
  }
}

bool PodWorker::ensure_sandbox(std::vector<cri::PodSandbox>& sandboxes) {
  const auto& pod = manifest_->pod;
  const cri::PodSandbox* ready = nullptr;
  for (auto& s : sandboxes)
    if (s.state() == cri::SANDBOX_READY) {
      ready = &s;
      break;
    }
  if (ready) {
    if (ready->id() != sandbox_id_) {
      // First sync or adoption after a restart: pick up the pod IP and start time.
      auto st = ctx_.cri.pod_sandbox_status(ready->id());
      sandbox_id_ = ready->id();
      sandbox_config_ = sandbox_config(ctx_.config, pod, ready->metadata().attempt());
      view_.pod_ip = pod.spec.host_network ? ctx_.host_ip : st.network().ip();
      view_.sandbox_created_ns = st.created_at();
      terminal_ = false;
      log_info("pod {}: sandbox {} (attempt {}) adopted", full_name_, sandbox_id_.substr(0, 13), ready->metadata().attempt());
    }
    view_.sandbox_ready = true;
    view_.host_ip = ctx_.host_ip;
    return false;
  }
  view_.sandbox_ready = false;
  view_.host_ip = ctx_.host_ip;
  if (!sandboxes.empty()) {
    // The newest sandbox is not ready: either this pod is done (its containers are
    // not restarted) or the sandbox died and a new one must replace it.
    if (terminal_) return false;
    auto containers = ctx_.cri.list_containers(uid_);
    load_instances(containers);
    PodView probe_view = view_;
    auto st = compute_pod_status(pod, probe_view, ctx_.runtime_name(), nullptr);
    if (st.phase == "Succeeded" || st.phase == "Failed") {
      terminal_ = true;
      return false;
    }
  }
  uint32_t attempt = sandboxes.empty() ? 0 : sandboxes[0].metadata().attempt() + 1;
  setup_volumes(ctx_.config, pod);
  // The pod's cgroup with its summed limits exists before anything runs in it.
  ensure_pod_cgroup(ctx_.config, pod);
  sandbox_config_ = sandbox_config(ctx_.config, pod, attempt);
  mkdir_p(sandbox_config_.log_directory(), 0755);
  auto id = ctx_.cri.run_pod_sandbox(sandbox_config_);
  // Containers of the old sandboxes die with them; remove them and the sandboxes.
  for (auto& c : sandboxes.empty() ? std::vector<cri::Container>{} : ctx_.cri.list_containers(uid_))
    if (c.pod_sandbox_id() != id) {
      try {
        ctx_.cri.remove_container(c.id());
      } catch (const std::exception& e) {
        log_warn("pod {}: remove container {}: {}", full_name_, c.id().substr(0, 13), e.what());
      }
    }
  for (auto& s : sandboxes) {
    try {
      ctx_.cri.stop_pod_sandbox(s.id());
      ctx_.cri.remove_pod_sandbox(s.id());
    } catch (const std::exception& e) {
      log_warn("pod {}: remove sandbox {}: {}", full_name_, s.id().substr(0, 13), e.what());
    }
  }
  auto st = ctx_.cri.pod_sandbox_status(id);
  sandbox_id_ = id;
  view_.sandbox_ready = true;
  view_.pod_ip = pod.spec.host_network ? ctx_.host_ip : st.network().ip();
  view_.sandbox_created_ns = st.created_at();
  status_cache_.clear();
  log_info("pod {}: sandbox {} started (attempt {}, ip {})", full_name_, id.substr(0, 13), attempt, view_.pod_ip);
  return true;
}

void PodWorker::load_instances(const std::vector<cri::Container>& containers) {
  view_.instances.clear();
  std::map<std::string, cri::ContainerStatus> cache;
  for (auto& c : containers) {
    if (!sandbox_id_.empty() && c.pod_sandbox_id() != sandbox_id_) continue;
    ContainerInstance inst;
    inst.id = c.id();
    inst.attempt = c.metadata().attempt();
    auto cached = status_cache_.find(c.id());
    if (cached != status_cache_.end() && cached->second.state() == c.state()) {
      inst.status = cached->second;
    } else {
      try {
        inst.status = ctx_.cri.container_status(c.id());
      } catch (const std::exception& e) {
        if (CriClient::is_not_found(e)) continue;
        throw;
      }
    }
    cache[c.id()] = inst.status;
    view_.instances[c.metadata().name()].push_back(inst);
  }
  status_cache_ = std::move(cache);
  for (auto& [name, list] : view_.instances)
    std::sort(list.begin(), list.end(), [](auto& a, auto& b) { return a.attempt > b.attempt; });
}

void PodWorker::restart_or_wait(const Container& c, const ContainerInstance& last) {
  auto now = Clock::now();
  std::string key = c.name;
  auto finished = steady_from_wall(last.status.finished_at());
  if (backoff_.in_backoff_since(key, finished, now)) {
    auto wait = backoff_.current(key, now);
    view_.waiting[c.name] = {"CrashLoopBackOff",
                             fmt::format("back-off {}s restarting failed container={} pod={}_{}({})", wait.count() / 1000,
                                         c.name, manifest_->pod.name, manifest_->pod.namespace_, uid_)};
    backoff_wake_ = std::min(backoff_wake_, backoff_.release_time(key, finished));
    return;
  }
  backoff_.next(key, now);
  start_container(c, last.attempt + 1);
}

bool PodWorker::sync_init_containers() {
  const auto& spec = manifest_->pod.spec;
  for (auto& c : spec.init_containers) {
    auto it = view_.instances.find(c.name);
    if (it == view_.instances.end() || it->second.empty()) {
      start_container(c, 0);
      return false;
    }
    auto& cur = it->second[0];
    switch (cur.status.state()) {
    case cri::CONTAINER_RUNNING: return false;
    case cri::CONTAINER_CREATED:
      ctx_.cri.start_container(cur.id);
      return false;
    case cri::CONTAINER_EXITED:
      if (cur.status.exit_code() == 0) continue;
      if (spec.restart_policy != "Never") restart_or_wait(c, cur);
      return false;
    default: return false;
    }
  }
  return true;
}

void PodWorker::sync_containers() {
  const auto& spec = manifest_->pod.spec;
  for (auto& c : spec.containers) {
    auto it = view_.instances.find(c.name);
    if (it == view_.instances.end() || it->second.empty()) {
      start_container(c, 0);
      continue;
    }
    auto& cur = it->second[0];
    switch (cur.status.state()) {
    case cri::CONTAINER_RUNNING: {
      auto hash = cur.status.annotations().find(kContainerHashAnnotation);
      if (hash != cur.status.annotations().end() && hash->second != c.hash) {
        log_info("pod {}: container {} definition changed, will be restarted", full_name_, c.name);
        stop_container(&c, cur.id, manifest_->pod.spec.termination_grace_period_seconds);
        notify();
      }
      break;
    }
    case cri::CONTAINER_CREATED: ctx_.cri.start_container(cur.id); break;
    case cri::CONTAINER_EXITED:
      if (should_restart(spec.restart_policy, cur.status.exit_code())) restart_or_wait(c, cur);
      break;
    default: break;
    }
    // Keep the newest dead instance for lastState; older ones go (the kubelet's GC).
    auto& list = view_.instances[c.name];
    while (list.size() > 2) {
      try {
        ctx_.cri.remove_container(list.back().id);
      } catch (const std::exception& e) {
        if (!CriClient::is_not_found(e)) throw;
      }
      list.pop_back();
    }
  }
}

void PodWorker::record_event(const char* type, const char* reason, std::string message) {
  nlohmann::json involved = {{"kind", "Pod"}, {"uid", uid_}};
  if (manifest_) {
    involved["namespace"] = manifest_->pod.namespace_;
    involved["name"] = manifest_->pod.name;
  }
  ctx_.store.record_event({type, reason, std::move(message), std::move(involved)});
}

void PodWorker::publish() {
  const auto& m = *manifest_;
  auto st = compute_pod_status(m.pod, view_, ctx_.runtime_name(), last_status_ ? &*last_status_ : nullptr);
  if (!last_status_ || to_json(*last_status_) != to_json(st)) {
    if (!last_status_ || last_status_->phase != st.phase)
      log_info("pod {}: phase {}", full_name_, st.phase);
    for (auto& cs : st.container_statuses)
      if (cs.state.kind == ContainerState::Kind::waiting && !cs.state.reason.empty() && cs.state.reason != "ContainerCreating" &&
          cs.state.reason != "PodInitializing")
        log_info("pod {}: container {} waiting: {}: {}", full_name_, cs.name, cs.state.reason, cs.state.message);
  }
  nlohmann::json meta = {{"name", m.pod.name}, {"namespace", m.pod.namespace_}, {"uid", uid_},
                         {"creationTimestamp", st.start_time}, {"labels", m.pod.labels}, {"annotations", m.pod.annotations}};
  nlohmann::json spec = m.source.value("spec", nlohmann::json::object());
  spec["nodeName"] = ctx_.config.node_name;
  ctx_.store.set_pod(uid_, {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", spec}, {"status", to_json(st)}});
  last_status_ = std::move(st);
}

} // namespace berth::agent
