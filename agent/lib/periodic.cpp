#include "agent/lib/periodic.hpp"

#include <pthread.h>

#include "agent/lib/log.hpp"

namespace berth::agent {

PeriodicThread::PeriodicThread(std::string name, std::chrono::milliseconds period, std::function<void()> task)
    : name_(std::move(name)), period_(period), task_(std::move(task)), thread_([this] { loop(); }) {}

PeriodicThread::~PeriodicThread() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PeriodicThread::loop() {
  ::pthread_setname_np(::pthread_self(), name_.substr(0, 15).c_str());
  // The first round at once, as the kubelet's wait.Until: image GC learns which images
  // exist (their age counts from then), log rotation cleans what a crash left.
  auto next = std::chrono::steady_clock::now();
  while (true) {
    {
      std::unique_lock lk(mu_);
      if (cv_.wait_until(lk, next, [this] { return stop_; })) return;
    }
    try {
      task_();
    } catch (const std::exception& e) {
      log_error("{}: {}", name_, e.what());
    }
    // A task longer than the period runs again at once, not in a burst of missed rounds.
    next = std::max(next + period_, std::chrono::steady_clock::now());
  }
}

} // namespace berth::agent
