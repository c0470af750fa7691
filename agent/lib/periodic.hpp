// A thread that runs one task at once and then every period until destroyed: log rotation and image
// garbage collection run beside the event loop, whose relist a slow gzip or RemoveImage
// must not hold up. Exceptions of the task are logged; the next period tries again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace berth::agent {

class PeriodicThread {
public:
  PeriodicThread(std::string name, std::chrono::milliseconds period, std::function<void()> task);
  ~PeriodicThread(); // stops it: waits for a task that is running (CRI calls have deadlines)
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

private:
  void loop();
  std::string name_;
  std::chrono::milliseconds period_;
  std::function<void()> task_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace berth::agent
