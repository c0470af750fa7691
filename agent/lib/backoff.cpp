#include "agent/lib/backoff.hpp"

#include <algorithm>

namespace berth::agent {

bool Backoff::in_backoff_since(const std::string& key, Clock::time_point finished_at, Clock::time_point now) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || expired(it->second, now)) return false;
  return now - finished_at < it->second.backoff;
}

void Backoff::next(const std::string& key, Clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end() || expired(it->second, now)) {
    entries_[key] = {initial_, now};
    return;
  }
  it->second.backoff = std::min(it->second.backoff * 2, max_);
  it->second.last_update = now;
}

std::chrono::milliseconds Backoff::current(const std::string& key, Clock::time_point now) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || expired(it->second, now)) return std::chrono::milliseconds(0);
  return it->second.backoff;
}

Backoff::Clock::time_point Backoff::release_time(const std::string& key, Clock::time_point finished_at) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return finished_at;
  return finished_at + it->second.backoff;
}

void Backoff::gc(Clock::time_point now) {
  std::erase_if(entries_, [&](const auto& kv) { return expired(kv.second, now); });
}

} // namespace berth::agent
