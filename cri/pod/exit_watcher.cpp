#include "cri/pod/exit_watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"

namespace berth::cri {

ExitWatcher::ExitWatcher(std::string dir, std::function<void(const std::string&)> on_exit)
    : dir_(std::move(dir)), on_exit_(std::move(on_exit)) {
  mkdir_p(dir_, 0700);
  inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) fail_errno("inotify_init1");
  if (::inotify_add_watch(inotify_.get(), dir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
    fail_errno("watch exit directory {}", dir_);
  stop_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) fail_errno("eventfd");
  thread_ = std::thread([this] { loop(); });
}

ExitWatcher::~ExitWatcher() {
  uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  thread_.join();
}

void ExitWatcher::loop() {
  alignas(inotify_event) char buf[16384];
  for (;;) {
    pollfd p[2] = {{inotify_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::warn("exit watcher: poll: {}", strerror(errno));
      return;
    }
    if (p[1].revents) return;
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) continue;
    for (char* q = buf; q < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(q);
      q += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        // Events were lost: the owner rescans on an empty id.
        on_exit_("");
        continue;
      }
      if (ev->len == 0 || ev->name[0] == '.') continue;  // the shim's temp files
      try {
        on_exit_(ev->name);
      } catch (const std::exception& e) {
        log::warn("exit watcher: {}: {}", ev->name, e.what());
      }
    }
  }
}

} // namespace berth::cri
