#include "cri/image/cancel.hpp"

#include <thread>

#include "common/error.hpp"

namespace berth::image {

PullContext::PullContext(std::function<bool()> client_cancelled, std::chrono::milliseconds timeout)
    : client_cancelled_(std::move(client_cancelled)), timeout_(timeout),
      deadline_(timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max()) {}

bool PullContext::cancelled() const {
  if (cancelled_.load(std::memory_order_relaxed)) return true;
  if (!client_cancelled_) return false;
  std::lock_guard lk(mu_);
  auto now = Clock::now();
  if (now - last_poll_ < std::chrono::milliseconds(50)) return cancelled_.load();
  last_poll_ = now;
  if (client_cancelled_()) cancelled_ = true;
  return cancelled_.load();
}

bool PullContext::done() const { return cancelled() || Clock::now() >= deadline_; }

void PullContext::check() const {
  if (cancelled()) fail_code(ECANCELED, "pull cancelled (the client went away)");
  if (Clock::now() >= deadline_)
    fail_code(ETIMEDOUT, "pull deadline of {} s exceeded", timeout_.count() / 1000.0);
}

bool PullContext::sleep_for(Clock::duration d) const {
  auto until = Clock::now() + d;
  while (Clock::now() < until) {
    if (done()) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
  return !done();
}

} // namespace berth::image
