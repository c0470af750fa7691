// The kubelet's crash-loop back-off (flowcontrol.Backoff): per container, 10 s doubling
// to 300 s; an entry untouched for twice the maximum (10 min) starts again at 10 s.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace berth::agent {

class Backoff {
public:
  using Clock = std::chrono::steady_clock;
  Backoff(std::chrono::seconds initial = std::chrono::seconds(10), std::chrono::seconds max = std::chrono::seconds(300))
      : initial_(initial), max_(max) {}

  // True while a container that finished at finished_at must wait before its restart.
  bool in_backoff_since(const std::string& key, Clock::time_point finished_at, Clock::time_point now) const;
  // Records a restart: the next wait doubles (or starts at initial after expiry).
  void next(const std::string& key, Clock::time_point now);
  // Current wait for key (zero when none).
  std::chrono::milliseconds current(const std::string& key, Clock::time_point now) const;
  // When the wait that began at finished_at ends.
  Clock::time_point release_time(const std::string& key, Clock::time_point finished_at) const;
  // When next() last ran for key (the last failure); the epoch when never.
  Clock::time_point last_update(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? Clock::time_point{} : it->second.last_update;
  }
  void forget(const std::string& key) { entries_.erase(key); }
  // Drops entries untouched for 2*max (the kubelet's GC).
  void gc(Clock::time_point now);

private:
  struct Entry {
    std::chrono::milliseconds backoff;
    Clock::time_point last_update;
  };
  bool expired(const Entry& e, Clock::time_point now) const { return now - e.last_update > 2 * max_; }
  std::chrono::milliseconds initial_, max_;
  std::map<std::string, Entry> entries_;
};

} // namespace berth::agent
