#include "agent/lib/pod_worker.hpp"

#include <algorithm>
#include <filesystem>

#include "agent/lib/cri_convert.hpp"
#include "agent/lib/log.hpp"
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

// A wall-clock instant from the runtime as a point on the steady clock.
PodWorker::Clock::time_point steady_from_wall(int64_t wall_ns) {
  auto age = std::chrono::nanoseconds(wall_now_ns() - wall_ns);
  return PodWorker::Clock::now() - std::max(age, std::chrono::nanoseconds(0));
}

std::string error_text(const std::exception& e) { return e.what(); }

} // namespace

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
  const auto& pod = manifest_->pod;
  backoff_wake_ = Clock::time_point::max();
  view_.waiting.clear();
  auto sandboxes = ctx_.cri.list_pod_sandboxes(uid_);
  std::sort(sandboxes.begin(), sandboxes.end(), [](auto& a, auto& b) { return a.created_at() > b.created_at(); });
  ensure_sandbox(sandboxes);
  load_instances(ctx_.cri.list_containers(uid_));
  if (view_.sandbox_ready && !terminal_) {
    if (sync_init_containers()) sync_containers();
    run_probes();
  }
  publish();
  // A pod that ran to completion (restartPolicy Never/OnFailure) keeps no sandbox.
  if (last_status_ && (last_status_->phase == "Succeeded" || last_status_->phase == "Failed") && !terminal_) {
    terminal_ = true;
    log_info("{}: pod {} ({}), stopping its sandbox", "PodCompleted", full_name_, last_status_->phase);
    if (!sandbox_id_.empty()) ctx_.cri.stop_pod_sandbox(sandbox_id_);
    (void)pod;
  }
}

void PodWorker::ensure_sandbox(std::vector<cri::PodSandbox>& sandboxes) {
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
    return;
  }
  view_.sandbox_ready = false;
  view_.host_ip = ctx_.host_ip;
  if (!sandboxes.empty()) {
    // The newest sandbox is not ready: either this pod is done (its containers are
    // not restarted) or the sandbox died and a new one must replace it.
    if (terminal_) return;
    auto containers = ctx_.cri.list_containers(uid_);
    load_instances(containers);
    PodView probe_view = view_;
    auto st = compute_pod_status(pod, probe_view, ctx_.runtime_name, nullptr);
    if (st.phase == "Succeeded" || st.phase == "Failed") {
      terminal_ = true;
      return;
    }
  }
  uint32_t attempt = sandboxes.empty() ? 0 : sandboxes[0].metadata().attempt() + 1;
  setup_volumes(ctx_.config, pod);
  sandbox_config_ = sandbox_config(ctx_.config, pod, attempt);
  mkdir_p(sandbox_config_.log_directory(), 0755);
  auto id = ctx_.cri.run_pod_sandbox(sandbox_config_);
  // Containers of the old sandboxes die with them; remove them and the sandboxes.
  for (auto& c : ctx_.cri.list_containers(uid_))
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

bool PodWorker::ensure_image(const Container& c) {
  auto now = Clock::now();
  std::string key = "pull/" + c.name;
  bool present = c.image_pull_policy != "Always" && ctx_.cri.image_status(c.image).has_value();
  if (present) return true;
  if (c.image_pull_policy == "Never") {
    view_.waiting[c.name] = {"ErrImageNeverPull",
                             fmt::format("Container image \"{}\" is not present with pull policy of Never", c.image)};
    return false;
  }
  if (backoff_.in_backoff_since(key, now - std::chrono::milliseconds(1), now)) {
    view_.waiting[c.name] = {"ImagePullBackOff", fmt::format("Back-off pulling image \"{}\"", c.image)};
    backoff_wake_ = std::min(backoff_wake_, backoff_.release_time(key, now));
    return false;
  }
  try {
    ctx_.cri.pull_image(c.image, sandbox_config_);
    backoff_.forget(key);
    return true;
  } catch (const std::exception& e) {
    backoff_.next(key, now);
    backoff_wake_ = std::min(backoff_wake_, now + backoff_.current(key, now));
    view_.waiting[c.name] = {"ErrImagePull", error_text(e)};
    log_warn("pod {}: Failed to pull image \"{}\": {}", full_name_, c.image, e.what());
    return false;
  }
}

void PodWorker::start_container(const Container& c, uint32_t attempt) {
  const auto& pod = manifest_->pod;
  if (!ensure_image(c)) return;
  std::string id;
  try {
    auto uid = c.security_context.run_as_user ? c.security_context.run_as_user : pod.spec.security_context.run_as_user;
    auto non_root = c.security_context.run_as_non_root ? c.security_context.run_as_non_root
                                                       : pod.spec.security_context.run_as_non_root;
    if (non_root.value_or(false)) {
      if (uid && *uid == 0) fail("container's runAsUser breaks non-root policy (pod: {:?}, container: {})", pod.name, c.name);
      if (!uid) {
        auto img = ctx_.cri.image_status(c.image);
        if (!img || !img->has_uid() || img->uid().value() == 0)
          fail("container has runAsNonRoot and image will run as root (pod: {:?}, container: {})", pod.name, c.name);
      }
    }
    auto mounts = container_mounts(ctx_.config, pod, c, write_etc_hosts(ctx_.config, pod, view_.pod_ip));
    auto config = container_config(ctx_.config, pod, c, attempt, {view_.pod_ip, ctx_.host_ip, ctx_.config.node_name}, mounts);
    id = ctx_.cri.create_container(sandbox_id_, config, sandbox_config_);
  } catch (const std::exception& e) {
    bool config_error = dynamic_cast<const Error*>(&e) && std::string(e.what()).find("CRI ") == std::string::npos;
    view_.waiting[c.name] = {config_error ? "CreateContainerConfigError" : "CreateContainerError", error_text(e)};
    log_warn("pod {}: create container {}: {}", full_name_, c.name, e.what());
    backoff_wake_ = std::min(backoff_wake_, Clock::now() + std::chrono::seconds(10));
    return;
  }
  try {
    ctx_.cri.start_container(id);
  } catch (const std::exception& e) {
    view_.waiting[c.name] = {"RunContainerError", error_text(e)};
    log_warn("pod {}: start container {}: {}", full_name_, c.name, e.what());
    notify(); // the runtime records the failed start as an exit: restart through the back-off
    return;
  }
  log_info("pod {}: Started container {} (attempt {}, id {})", full_name_, c.name, attempt, id.substr(0, 13));
  if (c.post_start) {
    std::string error;
    if (!run_hook(*c.post_start, id, "PostStartHook", error)) {
      log_warn("pod {}: container {}: FailedPostStartHook: {}", full_name_, c.name, error);
      stop_container(&c, id, manifest_->pod.spec.termination_grace_period_seconds);
    }
  }
  notify(); // look again right away: its state and probes start now
}

bool PodWorker::run_hook(const Handler& h, const std::string& container_id, const std::string& what, std::string& error) {
  try {
    if (h.kind == Handler::Kind::exec) {
      auto r = ctx_.cri.exec_sync(container_id, h.exec.command,
                                  std::chrono::seconds(std::max<int64_t>(manifest_->pod.spec.termination_grace_period_seconds, 1)));
      if (r.exit_code == 0) return true;
      error = fmt::format("{} exited with {}: {}{}", what, r.exit_code, r.stdout_, r.stderr_);
      return false;
    }
    if (h.kind == Handler::Kind::http_get) {
      auto host = view_.pod_ip.empty() ? std::string("127.0.0.1") : view_.pod_ip;
      auto r = run_http_get(h.http_get, host, std::chrono::seconds(10));
      if (r.result == ProbeResult::success) return true;
      error = fmt::format("{}: {}", what, r.message);
      return false;
    }
  } catch (const std::exception& e) {
    error = fmt::format("{}: {}", what, e.what());
    return false;
  }
  return true;
}

void PodWorker::stop_container(const Container* spec, const std::string& id, int64_t grace) {
  auto start = Clock::now();
  if (spec && spec->pre_stop) {
    std::string error;
    if (!run_hook(*spec->pre_stop, id, "PreStopHook", error))
      log_warn("pod {}: container {}: FailedPreStopHook: {}", full_name_, spec->name, error);
    grace -= std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
    grace = std::max<int64_t>(grace, 2); // the kubelet's minimum after a preStop hook
  }
  try {
    ctx_.cri.stop_container(id, grace);
  } catch (const std::exception& e) {
    if (!CriClient::is_not_found(e)) throw;
  }
}

void PodWorker::run_probes() {
  const auto& pod = manifest_->pod;
  std::map<std::string, Trackers> keep;
  auto now = Clock::now();
  std::string host = view_.pod_ip.empty() ? std::string("127.0.0.1") : view_.pod_ip;
  for (auto& c : pod.spec.containers) {
    auto it = view_.instances.find(c.name);
    if (it == view_.instances.end() || it->second.empty()) continue;
    auto& cur = it->second[0];
    if (cur.status.state() != cri::CONTAINER_RUNNING) continue;
    if (!c.startup_probe && !c.liveness_probe && !c.readiness_probe) continue;
    auto found = probes_.find(cur.id);
    Trackers tr;
    if (found != probes_.end()) tr = std::move(found->second);
    else {
      auto started = steady_from_wall(cur.status.started_at());
      if (c.startup_probe) tr.startup.emplace(ProbeKind::startup, *c.startup_probe, started);
      if (c.liveness_probe) tr.liveness.emplace(ProbeKind::liveness, *c.liveness_probe, started);
      if (c.readiness_probe) tr.readiness.emplace(ProbeKind::readiness, *c.readiness_probe, started);
    }
    auto run_one = [&](ProbeTracker& t) {
      if (!t.due(now)) return;
      auto& h = t.probe().handler;
      auto timeout = std::chrono::seconds(t.probe().timeout_seconds);
      ProbeOutcome out;
      try {
        switch (h.kind) {
        case Handler::Kind::exec: {
          auto r = ctx_.cri.exec_sync(cur.id, h.exec.command, timeout);
          out = {r.exit_code == 0 ? ProbeResult::success : ProbeResult::failure,
                 fmt::format("command exited with {}: {}{}", r.exit_code, r.stdout_, r.stderr_)};
          break;
        }
        case Handler::Kind::http_get: out = run_http_get(h.http_get, host, timeout); break;
        case Handler::Kind::tcp_socket:
          out = run_tcp_socket(h.tcp_socket.host.empty() ? host : h.tcp_socket.host, h.tcp_socket.port, timeout);
          break;
        case Handler::Kind::grpc: out = run_grpc(host, h.grpc.port, h.grpc.service, timeout); break;
        default: return;
        }
      } catch (const std::exception& e) {
        out = {ProbeResult::failure, e.what()};
      }
      if (out.result == ProbeResult::failure)
        log_info("pod {}: {} probe of {} failed: {}", full_name_, probe_kind_name(t.kind()), c.name, out.message);
      if (t.record(out.result, Clock::now()))
        log_info("pod {}: container {} {} probe: {}", full_name_, c.name, probe_kind_name(t.kind()),
                 t.result() == ProbeResult::success ? "success" : "failure");
    };
    bool started = true;
    if (tr.startup) {
      if (tr.startup->result() != ProbeResult::success) run_one(*tr.startup);
      started = tr.startup->result() == ProbeResult::success;
    }
    view_.started[c.name] = started;
    if (started && tr.liveness) run_one(*tr.liveness);
    if (started && tr.readiness) run_one(*tr.readiness);
    view_.ready[c.name] = !tr.readiness || tr.readiness->result() == ProbeResult::success;
    bool kill = (tr.liveness && tr.liveness->result() == ProbeResult::failure) ||
                (tr.startup && tr.startup->result() == ProbeResult::failure);
    if (kill) {
      log_info("pod {}: container {} failed {} probe, will be restarted", full_name_, c.name,
               tr.startup && tr.startup->result() == ProbeResult::failure ? "startup" : "liveness");
      stop_container(&c, cur.id, pod.spec.termination_grace_period_seconds);
      notify();
      continue;
    }
    keep[cur.id] = std::move(tr);
  }
  probes_ = std::move(keep);
}

void PodWorker::publish() {
  const auto& m = *manifest_;
  auto st = compute_pod_status(m.pod, view_, ctx_.runtime_name, last_status_ ? &*last_status_ : nullptr);
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

void PodWorker::kill_pod() {
  int64_t grace = manifest_ ? manifest_->pod.spec.termination_grace_period_seconds : 30;
  // Retried until the runtime has really removed the pod (it may be restarting), unless
  // berthlet shuts down meanwhile: then the next berthlet finds the pod as an orphan.
  auto delay = std::chrono::milliseconds(200);
  while (true) {
    try {
      auto containers = ctx_.cri.list_containers(uid_);
      // Stop all running containers together, each with its preStop hook and grace period.
      std::vector<std::thread> stoppers;
      for (auto& c : containers) {
        if (c.state() != cri::CONTAINER_RUNNING) continue;
        const Container* spec = nullptr;
        if (manifest_)
          for (auto& s : manifest_->pod.spec.containers)
            if (s.name == c.metadata().name()) spec = &s;
        auto ann = c.annotations().find(kGracePeriodAnnotation);
        int64_t g = grace;
        if (!manifest_ && ann != c.annotations().end()) g = parse_int(ann->second).value_or(grace);
        stoppers.emplace_back([this, spec, id = c.id(), g] {
          try {
            stop_container(spec, id, g);
          } catch (const std::exception& e) {
            log_warn("pod {}: stop container {}: {}", full_name_, id.substr(0, 13), e.what());
          }
        });
      }
      for (auto& t : stoppers) t.join();
      for (auto& c : containers) ctx_.cri.remove_container(c.id());
      for (auto& s : ctx_.cri.list_pod_sandboxes(uid_)) {
        ctx_.cri.stop_pod_sandbox(s.id());
        ctx_.cri.remove_pod_sandbox(s.id());
      }
      if (ctx_.cri.list_pod_sandboxes(uid_).empty() && ctx_.cri.list_containers(uid_).empty()) break;
    } catch (const std::exception& e) {
      log_error("kill {}: {}", pod_ref(), e.what());
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, delay, [&] { return abandon_; })) {
      log_info("pod {}: left as it is (berthlet shuts down)", full_name_);
      return;
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
  }
  teardown_volumes(ctx_.config, uid_);
  remove_pod_cgroups(ctx_.config, uid_);
  if (manifest_) {
    std::error_code ec;
    std::filesystem::remove_all(pod_log_dir(ctx_.config, manifest_->pod), ec);
  }
  ctx_.store.remove_pod(uid_);
  log_info("pod {}: stopped and removed", full_name_);
}

} // namespace berth::agent
