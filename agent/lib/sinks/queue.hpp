// What one sink has not delivered yet: the latest state per key (the node, each pod) and
// a bounded queue of events. A newer state replaces an undelivered older one (a deletion
// replaces a pod's snapshot) but keeps its place in line and the time of its first
// undelivered change; when the event queue is full the oldest event is dropped (counted).
// Not thread-safe: the SinkRunner holds its lock around every call.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <random>

#include "agent/lib/sinks/sink.hpp"

namespace berth::agent {

class SinkQueue {
public:
  explicit SinkQueue(size_t max_events) : max_events_(max_events) {}
  void put_state(SinkItem item);
  void put_event(SinkItem item);
  // The next item to deliver (states and events in the order they first arrived).
  std::optional<SinkItem> front() const;
  // item was delivered or rejected: forgets it, unless a newer state of its key came since.
  void done(const SinkItem& item);
  size_t depth() const { return states_.size() + events_.size(); }
  bool empty() const { return depth() == 0; }
  uint64_t events_dropped() const { return events_dropped_; }

private:
  static std::string state_key(const SinkItem& i);
  struct State {
    SinkItem item;
    uint64_t place; // its place in line: the arrival of its first undelivered change
  };
  size_t max_events_;
  uint64_t next_place_ = 1, next_version_ = 1, events_dropped_ = 0;
  std::map<std::string, State> states_;
  std::map<uint64_t, std::string> line_; // place -> state key
  std::deque<std::pair<uint64_t, SinkItem>> events_;
};

// Exponential back-off between failed deliveries: initial, doubling up to max, each wait
// jittered down by up to 20 % so that many nodes do not retry in step.
class DeliveryBackoff {
public:
  DeliveryBackoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);
  std::chrono::milliseconds next(); // the wait after one more failure
  void reset() { failures_ = 0; }
  int failures() const { return failures_; }

private:
  std::chrono::milliseconds initial_, max_;
  int failures_ = 0;
  std::minstd_rand rng_;
};

} // namespace berth::agent
