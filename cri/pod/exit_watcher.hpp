// Tells berthd when a shim records a container's exit: one thread watching the shims'
// exit directory with inotify (the shim writes .<id>.tmp and renames it to <id>).
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "common/fd.hpp"

namespace berth::cri {

class ExitWatcher {
public:
  // on_exit(id) runs on the watcher's thread for each exit file that appears.
  ExitWatcher(std::string dir, std::function<void(const std::string& id)> on_exit);
  ~ExitWatcher();  // stops and joins the thread
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

private:
  void loop();
  std::string dir_;
  std::function<void(const std::string&)> on_exit_;
  UniqueFd inotify_, stop_;
  std::thread thread_;
};

} // namespace berth::cri
