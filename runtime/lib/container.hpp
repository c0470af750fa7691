// The container lifecycle as the CLI exposes it: create, start, run, state, list,
// kill, delete. Each call is one short-lived process, as with runc.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth {

struct RuntimeContext {
  std::string root; // state root (--root)
  bool systemd_cgroup = false;
  bool cgroups_disabled = false; // --cgroup-manager=disabled: no cgroup is created or joined (crun)
  // --rootless resolved as runc does: a cgroup that cannot be created for lack of
  // permission means running without one (true), or an error (false).
  bool rootless_cgroups = false;
  // Limits the host cannot enforce are warnings instead of a failed create
  // (--allow-unenforced-limits, or BERTH_ALLOW_UNENFORCED_LIMITS=1 in the environment).
  bool allow_unenforced_limits = false;
};

struct CreateOptions {
  std::string id;
  std::string bundle; // empty: cwd
  std::string console_socket;
  std::string pidfd_socket; // receives a pidfd of the init ("standard"), as runc 1.2 and crun
  std::string pid_file;
  bool no_pivot = false;
  bool no_new_keyring = false;
  int preserve_fds = 0;
};

void create_container(const RuntimeContext& ctx, const CreateOptions& opts);
void start_container(const RuntimeContext& ctx, const std::string& id);
// create + start; in the foreground waits and returns the container's exit status
// (128+signal when killed) and deletes it unless keep. Detached: returns 0 once started.
int run_container(const RuntimeContext& ctx, const CreateOptions& opts, bool detach, bool keep);
nlohmann::ordered_json container_state(const RuntimeContext& ctx, const std::string& id);
std::vector<nlohmann::ordered_json> list_containers(const RuntimeContext& ctx);
void kill_container(const RuntimeContext& ctx, const std::string& id, int signal, bool all);
// `ps`: the container's processes as a JSON array of pids, or `ps` (default -ef) output
// filtered to them.
std::string container_ps(const RuntimeContext& ctx, const std::string& id, bool json,
                         const std::vector<std::string>& ps_args);
// pause / resume through cgroup.freeze, waiting until cgroup.events confirms.
void pause_container(const RuntimeContext& ctx, const std::string& id, bool pause);
// `update`: linux.resources applied to the live cgroup (runc's update semantics).
void update_container(const RuntimeContext& ctx, const std::string& id, const nlohmann::json& resources);
// `events`: one stats object (stats_once), or a stream of stats every interval and oom
// events, until the container stops.
void container_events(const RuntimeContext& ctx, const std::string& id, bool stats_once,
                      std::chrono::milliseconds interval, const std::function<void(const nlohmann::json&)>& emit);
void delete_container(const RuntimeContext& ctx, const std::string& id, bool force);

} // namespace berth
