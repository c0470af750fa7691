#include "cri/server/janitor.hpp"

#include "common/daemon_log.hpp"

namespace berth::cri {

Janitor::Janitor() : thread_([this] { loop(); }) {}

Janitor::~Janitor() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Janitor::post(std::string what, std::function<void()> work) {
  {
    std::lock_guard lk(mu_);
    queue_.emplace_back(std::move(what), std::move(work));
  }
  cv_.notify_one();
}

void Janitor::drain() {
  std::unique_lock lk(mu_);
  idle_.wait(lk, [this] { return queue_.empty() && !busy_; });
}

void Janitor::loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to do
    auto [what, work] = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lk.unlock();
    try {
      work();
    } catch (const std::exception& e) {
      // Left for the next start-up's orphan sweep.
      dlog::warn("cleanup failed", {{"what", what}, {"error", e.what()}});
    }
    lk.lock();
    busy_ = false;
    if (queue_.empty()) idle_.notify_all();
  }
}

} // namespace berth::cri
