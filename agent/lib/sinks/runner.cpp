#include "agent/lib/sinks/runner.hpp"

#include <pthread.h>

#include "agent/lib/log.hpp"
#include "agent/lib/metrics.hpp"

namespace berth::agent {

SinkRunner::SinkRunner(const SinkConfig& config, std::unique_ptr<StatusSink> sink)
    : name_(config.name), sink_(std::move(sink)), queue_(config.max_queued_events),
      backoff_(config.initial_backoff, config.max_backoff) {
  thread_ = std::thread([this] { loop(); });
}

SinkRunner::~SinkRunner() { stop(std::chrono::milliseconds(0)); }

size_t SinkRunner::depth() const {
  std::lock_guard lock(mu_);
  return queue_.depth();
}

void SinkRunner::put_state(SinkItem item) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.put_state(std::move(item));
    agent_metrics().sink_queue_depth.with({name_}).set(static_cast<double>(queue_.depth()));
  }
  cv_.notify_one();
}

void SinkRunner::put_event(SinkItem item) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    auto dropped = queue_.events_dropped();
    queue_.put_event(std::move(item));
    if (queue_.events_dropped() != dropped) agent_metrics().sink_events_dropped.with({name_}).inc();
    agent_metrics().sink_queue_depth.with({name_}).set(static_cast<double>(queue_.depth()));
  }
  cv_.notify_one();
}

void SinkRunner::stop(std::chrono::milliseconds flush) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    flush_deadline_ = SinkItem::Clock::now() + flush;
  }
  cv_.notify_one();
  {
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, flush_deadline_, [&] { return exited_; })) {
      lock.unlock();
      sink_->abort(); // a delivery to a slow endpoint must not hold up shutdown
    }
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  if (!queue_.empty())
    log_warn("status sink {}: {} undelivered item(s) left at shutdown{}", name_, queue_.depth(),
             failing_.empty() ? "" : " (last error: " + failing_ + ")");
}

void SinkRunner::record(const SinkItem& item, const Delivery& d) {
  auto& m = agent_metrics();
  auto now = SinkItem::Clock::now();
  switch (d.outcome) {
  case Delivery::Outcome::delivered:
    m.sink_deliveries.with({name_, kind_name(item.kind), "delivered"}).inc();
    m.sink_delivery_lag.with({name_}).observe(std::chrono::duration<double>(now - item.changed).count());
    if (!failing_.empty()) log_info("status sink {}: delivering again", name_);
    failing_.clear();
    break;
  case Delivery::Outcome::retry:
    m.sink_deliveries.with({name_, kind_name(item.kind), "retried"}).inc();
    // One line when the endpoint starts failing or fails differently, not one per retry.
    if (d.error != failing_)
      log_error("status sink {}: {} {}: {} ({} item(s) kept, retrying with back-off)", name_, kind_name(item.kind),
                item.key, d.error, queue_.depth());
    failing_ = d.error;
    break;
  case Delivery::Outcome::rejected:
    m.sink_deliveries.with({name_, kind_name(item.kind), "rejected"}).inc();
    log_error("status sink {}: {} {} rejected, dropped: {}", name_, kind_name(item.kind), item.key, d.error);
    failing_.clear();
    break;
  }
  if (auto dropped = queue_.events_dropped(); dropped != dropped_logged_) {
    log_warn("status sink {}: event queue full, {} oldest event(s) dropped so far", name_, dropped);
    dropped_logged_ = dropped;
  }
}

void SinkRunner::loop() {
  // "sink <name>" in top -H and /proc: which sink spends the CPU.
  ::pthread_setname_np(::pthread_self(), ("sink " + name_).substr(0, 15).c_str());
  loop_until_stopped();
  {
    std::lock_guard lock(mu_);
    exited_ = true;
  }
  cv_.notify_all();
}

void SinkRunner::loop_until_stopped() {
  using Clock = SinkItem::Clock;
  auto keepalive_period = sink_->keepalive_period();
  auto next_keepalive = Clock::now() + keepalive_period;
  std::unique_lock lock(mu_);
  while (true) {
    auto now = Clock::now();
    if (stopping_ && (queue_.empty() || now >= flush_deadline_)) return;
    if (keepalive_period.count() > 0 && now >= next_keepalive && !stopping_) {
      lock.unlock();
      auto d = sink_->keepalive();
      lock.lock();
      next_keepalive = Clock::now() + keepalive_period;
      if (d.outcome != Delivery::Outcome::delivered && d.error != failing_) {
        log_error("status sink {}: keepalive: {}", name_, d.error);
        failing_ = d.error;
      }
      continue;
    }
    auto item = queue_.front();
    auto wake = keepalive_period.count() > 0 ? next_keepalive : Clock::time_point::max();
    if (!item || (!stopping_ && now < retry_at_)) {
      if (item) wake = std::min(wake, retry_at_);
      if (wake == Clock::time_point::max()) cv_.wait(lock);
      else cv_.wait_until(lock, wake);
      continue;
    }
    lock.unlock();
    Delivery d;
    try {
      d = sink_->deliver(*item);
    } catch (const std::exception& e) {
      d = Delivery::retry(e.what());
    }
    lock.lock();
    if (d.outcome != Delivery::Outcome::retry) {
      queue_.done(*item);
      backoff_.reset();
      retry_at_ = {};
    } else {
      if (stopping_) { // the flush tries each endpoint once; an unreachable one ends it
        record(*item, d);
        return;
      }
      retry_at_ = Clock::now() + backoff_.next();
    }
    record(*item, d);
    agent_metrics().sink_queue_depth.with({name_}).set(static_cast<double>(queue_.depth()));
  }
}

} // namespace berth::agent
