// One thread per status sink: it delivers what its SinkQueue holds, in order, and after a
// failure waits (DeliveryBackoff) before it tries again, so a slow or dead endpoint holds
// up only its own thread. Producers (pod workers, the event loop, the node status thread)
// only put items in the queue: a lock held for a map insert, never for I/O.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/lib/sinks/queue.hpp"
#include "agent/lib/sinks/sink.hpp"
#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

class SinkRunner {
public:
  SinkRunner(const SinkConfig& config, std::unique_ptr<StatusSink> sink);
  ~SinkRunner(); // stop(0) if not stopped yet
  SinkRunner(const SinkRunner&) = delete;
  SinkRunner& operator=(const SinkRunner&) = delete;

  void put_state(SinkItem item);
  void put_event(SinkItem item);
  // Delivers what is left for at most flush (no back-off waits; the first failure ends it),
  // aborts a delivery still in progress then, ends the thread and logs what is left.
  void stop(std::chrono::milliseconds flush);
  const std::string& name() const { return name_; }
  size_t depth() const;

private:
  void loop();
  void loop_until_stopped();
  void record(const SinkItem& item, const Delivery& d); // metrics and the log line (lock held)

  std::string name_;
  std::unique_ptr<StatusSink> sink_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  SinkQueue queue_;
  DeliveryBackoff backoff_;
  SinkItem::Clock::time_point retry_at_{}, flush_deadline_{};
  bool stopping_ = false, stopped_ = false, exited_ = false;
  std::string failing_; // the error last logged while the endpoint fails ("" when fine)
  uint64_t dropped_logged_ = 0;
  std::thread thread_;
};

} // namespace berth::agent
