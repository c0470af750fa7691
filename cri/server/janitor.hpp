// File-system cleanup that a caller need not wait for: a removed container's rootfs
// unmount, writable snapshot and bundle go on this thread after RemoveContainer has
// answered (its record is already gone, so nothing can use them). A crash before the
// work is done leaves orphans that start-up recovery removes (no record owns them).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace berth::cri {

class Janitor {
public:
  Janitor();
  ~Janitor();  // finishes the queue, then joins
  Janitor(const Janitor&) = delete;
  Janitor& operator=(const Janitor&) = delete;

  // Queues `work` (what names it in the log on failure).
  void post(std::string what, std::function<void()> work);
  // Returns once everything queued before the call is done.
  void drain();

private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<std::pair<std::string, std::function<void()>>> queue_;
  bool busy_ = false, stopping_ = false;
  std::thread thread_;
};

} // namespace berth::cri
