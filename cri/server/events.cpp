#include "cri/server/events.hpp"

#include <algorithm>

namespace berth::cri {

std::optional<runtime::v1::ContainerEventResponse> EventBus::Subscription::next(std::chrono::milliseconds wait) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, wait, [this] { return !queue_.empty() || dropped_; });
  if (queue_.empty() || dropped_) return std::nullopt;
  auto ev = std::move(queue_.front());
  queue_.pop_front();
  return ev;
}

bool EventBus::Subscription::dropped() const {
  std::lock_guard lk(mu_);
  return dropped_;
}

std::shared_ptr<EventBus::Subscription> EventBus::subscribe() {
  auto s = std::make_shared<Subscription>();
  std::lock_guard lk(mu_);
  subs_.push_back(s);
  return s;
}

void EventBus::unsubscribe(const std::shared_ptr<Subscription>& s) {
  std::lock_guard lk(mu_);
  subs_.remove(s);
}

bool EventBus::has_subscribers() const {
  std::lock_guard lk(mu_);
  return !subs_.empty();
}

void EventBus::publish(const runtime::v1::ContainerEventResponse& ev) {
  std::lock_guard lk(mu_);
  for (auto& s : subs_) {
    std::lock_guard slk(s->mu_);
    if (s->dropped_) continue;
    if (s->queue_.size() >= kQueueLimit) {
      s->dropped_ = true;
      s->queue_.clear();
    } else {
      s->queue_.push_back(ev);
    }
    s->cv_.notify_one();
  }
}

} // namespace berth::cri
