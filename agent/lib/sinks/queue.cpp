#include "agent/lib/sinks/queue.hpp"

#include <algorithm>

namespace berth::agent {

const char* kind_name(SinkItem::Kind k) {
  switch (k) {
  case SinkItem::Kind::node: return "node";
  case SinkItem::Kind::pod: return "pod";
  case SinkItem::Kind::pod_deleted: return "podDeleted";
  case SinkItem::Kind::event: return "event";
  case SinkItem::Kind::pod_set: return "podSet";
  }
  return "unknown";
}

nlohmann::json envelope(const SinkItem& item) {
  return {{"kind", kind_name(item.kind)}, {"object", item.object ? *item.object : nlohmann::json::object()}};
}

std::string SinkQueue::state_key(const SinkItem& i) {
  // A pod and its deletion share a key: the deletion replaces the snapshot.
  switch (i.kind) {
  case SinkItem::Kind::node: return "node/" + i.key;
  case SinkItem::Kind::pod_set: return "podSet/" + i.key;
  default: return "pod/" + i.key;
  }
}

void SinkQueue::put_state(SinkItem item) {
  auto key = state_key(item);
  item.version = next_version_++;
  auto it = states_.find(key);
  if (it != states_.end()) {
    item.changed = std::min(item.changed, it->second.item.changed);
    it->second.item = std::move(item);
    return;
  }
  auto place = next_place_++;
  line_.emplace(place, key);
  states_.emplace(std::move(key), State{std::move(item), place});
}

void SinkQueue::put_event(SinkItem item) {
  item.version = next_version_++;
  if (max_events_ == 0) {
    events_dropped_++;
    return;
  }
  while (events_.size() >= max_events_) {
    events_.pop_front();
    events_dropped_++;
  }
  events_.emplace_back(next_place_++, std::move(item));
}

std::optional<SinkItem> SinkQueue::front() const {
  const SinkItem* state = nullptr;
  uint64_t state_place = UINT64_MAX;
  if (!line_.empty()) {
    state_place = line_.begin()->first;
    state = &states_.at(line_.begin()->second).item;
  }
  if (!events_.empty() && events_.front().first < state_place) return events_.front().second;
  if (state) return *state;
  return std::nullopt;
}

void SinkQueue::done(const SinkItem& item) {
  if (item.kind == SinkItem::Kind::event) {
    if (!events_.empty() && events_.front().second.version == item.version) events_.pop_front();
    return;
  }
  auto it = states_.find(state_key(item));
  if (it == states_.end() || it->second.item.version != item.version) return; // replaced since: deliver that
  line_.erase(it->second.place);
  states_.erase(it);
}

DeliveryBackoff::DeliveryBackoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(std::max(initial, max)), rng_(std::random_device{}()) {}

std::chrono::milliseconds DeliveryBackoff::next() {
  auto wait = initial_;
  for (int i = 0; i < failures_ && wait < max_; i++) wait *= 2;
  wait = std::min(wait, max_);
  failures_ = std::min(failures_ + 1, 62);
  std::uniform_real_distribution<double> jitter(0.8, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(wait.count()) * jitter(rng_)));
}

} // namespace berth::agent
