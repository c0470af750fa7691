// OOM kills in the container's cgroup, counted by the kernel: `oom_kill` in cgroup v2
// memory.events (watched with inotify, which the kernel signals on every change), or
// in cgroup v1 memory.oom_control (read at start and at exit).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/fd.hpp"

namespace berth::shim {

// The `oom_kill N` counter of memory.events / memory.oom_control text; nullopt if absent.
std::optional<uint64_t> parse_oom_kill(std::string_view text);

// The file that counts OOM kills for pid's memory cgroup, from /proc/<pid>/cgroup and
// the mount table; empty when there is none (no memory controller for that cgroup).
std::string find_oom_counter_file(pid_t pid);

class OomWatch {
public:
  OomWatch() = default;
  // Reads the baseline; watches the file with inotify when it can.
  explicit OomWatch(std::string path);

  // -1 when there is nothing to watch.
  int fd() const { return inotify_.get(); }
  const std::string& path() const { return path_; }
  // Drains inotify events and re-reads the counter (the cgroup may be gone by now:
  // then the last value read stands).
  void refresh();
  // True if the counter grew since the container was created.
  bool oom_killed() const { return last_ > baseline_; }
  uint64_t kills() const { return last_ - baseline_; }

private:
  std::string path_;
  UniqueFd inotify_;
  uint64_t baseline_ = 0;
  uint64_t last_ = 0;
};

} // namespace berth::shim
