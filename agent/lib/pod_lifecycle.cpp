// Container lifecycle steps of a pod worker: image pulls, create and start, hooks, stop,
// and the teardown of a whole pod.
#include "agent/lib/pod_worker.hpp"

#include <fcntl.h>

#include "agent/lib/cri_convert.hpp"
#include "agent/lib/fs_beneath.hpp"
#include "agent/lib/log.hpp"
#include "agent/lib/metrics.hpp"
#include "agent/lib/pod_cgroup.hpp"
#include "agent/lib/volumes.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::agent {

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
  // The wait counts from the last failed pull, however often the pod syncs meanwhile.
  auto failed_at = backoff_.last_update(key);
  if (backoff_.in_backoff_since(key, failed_at, now)) {
    view_.waiting[c.name] = {"ImagePullBackOff", fmt::format("Back-off pulling image \"{}\"", c.image)};
    backoff_wake_ = std::min(backoff_wake_, backoff_.release_time(key, failed_at));
    return false;
  }
  try {
    ctx_.cri.pull_image(c.image, sandbox_config_);
    backoff_.forget(key);
    return true;
  } catch (const std::exception& e) {
    backoff_.next(key, now);
    backoff_wake_ = std::min(backoff_wake_, now + backoff_.current(key, now));
    view_.waiting[c.name] = {"ErrImagePull", e.what()};
    log_warn("pod {}: Failed to pull image \"{}\": {}", full_name_, c.image, e.what());
    record_event("Warning", "Failed", fmt::format("Failed to pull image \"{}\": {}", c.image, e.what()));
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
    try {
      auto config = container_config(ctx_.config, pod, c, attempt, {view_.pod_ip, ctx_.host_ip, ctx_.config.node_name}, mounts);
      id = ctx_.cri.create_container(sandbox_id_, config, sandbox_config_);
    } catch (const std::exception&) {
      // No container uses this instance's subPath binds.
      try {
        release_container_mounts(ctx_.config, pod, c);
      } catch (const std::exception& e) {
        log_warn("pod {}: container {}: {}", full_name_, c.name, e.what());
      }
      throw;
    }
  } catch (const std::exception& e) {
    bool config_error = dynamic_cast<const Error*>(&e) && std::string(e.what()).find("CRI ") == std::string::npos;
    view_.waiting[c.name] = {config_error ? "CreateContainerConfigError" : "CreateContainerError", e.what()};
    log_warn("pod {}: create container {}: {}", full_name_, c.name, e.what());
    backoff_wake_ = std::min(backoff_wake_, Clock::now() + std::chrono::seconds(10));
    return;
  }
  try {
    ctx_.cri.start_container(id);
  } catch (const std::exception& e) {
    view_.waiting[c.name] = {"RunContainerError", e.what()};
    log_warn("pod {}: start container {}: {}", full_name_, c.name, e.what());
    notify(); // the runtime records the failed start as an exit: restart through the back-off
    return;
  }
  if (attempt > 0) {
    agent_metrics().container_restarts.inc();
    record_event("Normal", "Restarted", fmt::format("Restarted container {} (attempt {})", c.name, attempt));
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
  // The pod's own directories. A UID from an orphan's labels is checked like a manifest's
  // (teardown_volumes refuses one that could leave <rootDir>/pods).
  try {
    teardown_volumes(ctx_.config, uid_);
  } catch (const std::exception& e) {
    log_error("pod {}: volumes: {}", full_name_, e.what());
  }
  remove_pod_cgroups(ctx_.config, uid_);
  if (manifest_) {
    try {
      auto dir = pod_log_dir(ctx_.config, manifest_->pod);
      auto slash = dir.rfind('/');
      UniqueFd logs(::open(dir.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (logs) remove_tree_beneath(logs.get(), dir.substr(slash + 1));
    } catch (const std::exception& e) {
      log_error("pod {}: log directory: {}", full_name_, e.what());
    }
  }
  ctx_.store.remove_pod(uid_);
  log_info("pod {}: stopped and removed", full_name_);
}

} // namespace berth::agent
