// Container log rotation, as the kubelet's container log manager
// (pkg/kubelet/logs/container_log_manager.go): a running container's CRI log beyond
// containerLogMaxSize is renamed to "<log>.<YYYYMMDD-hhmmss>" and the runtime reopens it
// (ReopenContainerLog); at most containerLogMaxFiles files remain per container (the
// current one included), the rotated ones gzip-compressed except the newest.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "agent/lib/config.hpp"
#include "agent/lib/cri_client.hpp"

namespace berth::agent {

struct LogRotationPolicy {
  int64_t max_bytes = 10 << 20;
  int max_files = 5;
};

// Rotates the log `name` of the directory dir_fd when it is over the size: everything is
// relative to dir_fd and no symlink is followed. `reopen` asks the runtime to reopen the
// log (it throws on failure: the file is renamed back, as the kubelet does). Returns
// whether the log was rotated; a log that vanished meanwhile is no error.
bool rotate_log(int dir_fd, const std::string& name, const LogRotationPolicy& policy,
                const std::function<void()>& reopen, std::chrono::system_clock::time_point now);

// Removes what an interrupted rotation left next to `name`: "*.tmp" files of a
// compression, and rotated files whose compressed copy is complete.
void clean_unused_logs(int dir_fd, const std::string& name);

// "<name>.20261207-063000" (UTC, so that names sort in time order whatever the zone).
std::string rotated_log_name(const std::string& name, std::chrono::system_clock::time_point t);

// One round over the runtime's running containers whose logs are under podLogsDir.
// Called from its own thread (agent.cpp), never from the event loop.
class LogRotator {
public:
  LogRotator(const Config& config, CriClient& cri);
  // The running containers as the event loop's relist last saw them (any thread): the
  // rotation does not list the runtime's containers again every second.
  void set_running(std::set<std::string> ids);
  void run_once();

private:
  void rotate_container(const std::string& id, const std::string& log_path);
  void report(const std::string& id, const std::string& error);

  std::string logs_dir_;
  LogRotationPolicy policy_;
  CriClient& cri_;
  std::map<std::string, std::string> log_paths_; // container id -> its log (it never changes)
  std::map<std::string, std::string> errors_;    // container id -> the last error logged
  std::mutex running_mu_;
  std::optional<std::set<std::string>> running_; // none before the first relist
};

} // namespace berth::agent
