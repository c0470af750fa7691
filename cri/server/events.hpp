// Container lifecycle events for GetContainerEvents (the kubelet's evented PLEG): every
// subscriber has its own bounded queue; one that falls too far behind is dropped (its
// stream ends with RESOURCE_EXHAUSTED and the kubelet relists), so a slow client never
// holds berthd's memory or its other calls.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>

#include "api.pb.h"

namespace berth::cri {

class EventBus {
public:
  static constexpr size_t kQueueLimit = 4096;

  class Subscription {
  public:
    // The next event, or nullopt after `wait` without one (or once dropped).
    std::optional<runtime::v1::ContainerEventResponse> next(std::chrono::milliseconds wait);
    bool dropped() const;

  private:
    friend class EventBus;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<runtime::v1::ContainerEventResponse> queue_;
    bool dropped_ = false;
  };

  std::shared_ptr<Subscription> subscribe();
  void unsubscribe(const std::shared_ptr<Subscription>& s);
  void publish(const runtime::v1::ContainerEventResponse& ev);
  bool has_subscribers() const;

private:
  mutable std::mutex mu_;
  std::list<std::shared_ptr<Subscription>> subs_;
};

} // namespace berth::cri
