// When a pull must stop: its client went away (CRI: the gRPC call was cancelled) or its
// deadline passed. Polled from the pulling thread, the download workers and libcurl's
// progress callback; every wait of a pull (a blob's bytes, a backoff) wakes up for it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace berth::image {

class PullContext {
public:
  using Clock = std::chrono::steady_clock;
  // client_cancelled: polled at most every 50 ms (may be empty); timeout zero: none.
  PullContext(std::function<bool()> client_cancelled, std::chrono::milliseconds timeout);
  PullContext(const PullContext&) = delete;
  PullContext& operator=(const PullContext&) = delete;

  // The client went away, or the deadline passed.
  bool done() const;
  bool cancelled() const;  // by the client
  // Throws berth::Error: ECANCELED (client gone) or ETIMEDOUT (deadline).
  void check() const;
  Clock::time_point deadline() const { return deadline_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // Sleeps up to d; false when woken because the pull is done.
  bool sleep_for(Clock::duration d) const;

private:
  std::function<bool()> client_cancelled_;
  std::chrono::milliseconds timeout_;
  Clock::time_point deadline_;
  mutable std::mutex mu_;
  mutable Clock::time_point last_poll_{};
  mutable std::atomic<bool> cancelled_{false};
};

} // namespace berth::image
