#include "agent/lib/watcher.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>

#include "agent/lib/log.hpp"
#include "agent/lib/manifest.hpp"
#include "common/error.hpp"

namespace berth::agent {

ManifestWatcher::ManifestWatcher(std::vector<std::string> dirs) : dirs_(std::move(dirs)) {
  inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) fail_errno("inotify_init1");
  ensure_watches();
}

void ManifestWatcher::ensure_watches() {
  for (auto& d : dirs_) {
    if (watches_.count(d)) continue;
    int wd = ::inotify_add_watch(inotify_.get(), d.c_str(),
                                 IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO |
                                     IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (wd < 0) {
      // The kubelet keeps polling a directory that does not exist yet; so do we.
      continue;
    }
    watches_[d] = wd;
  }
}

void ManifestWatcher::drain() {
  alignas(struct inotify_event) char buf[8192];
  while (true) {
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        // The directory itself went away: watch it again when it comes back.
        for (auto it = watches_.begin(); it != watches_.end(); ++it)
          if (it->second == ev->wd) {
            ::inotify_rm_watch(inotify_.get(), ev->wd);
            watches_.erase(it);
            break;
          }
      }
      p += sizeof(struct inotify_event) + ev->len;
    }
  }
}

std::vector<FileChange> ManifestWatcher::scan() {
  ensure_watches();
  std::map<std::string, FileId> now;
  for (auto& d : dirs_) {
    std::vector<std::string> files;
    try {
      files = list_manifest_files(d);
    } catch (const Error& e) {
      log_warn("manifest directory: {}", e.what());
      continue;
    }
    for (auto& f : files) {
      struct stat st;
      if (::stat(f.c_str(), &st) != 0) continue;
      now[f] = {st.st_ino, st.st_size, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    }
  }
  std::vector<FileChange> changes;
  for (auto& [path, id] : now) {
    auto it = files_.find(path);
    if (it == files_.end()) changes.push_back({FileChange::Kind::added, path});
    else if (!(it->second == id)) changes.push_back({FileChange::Kind::modified, path});
  }
  for (auto& [path, id] : files_)
    if (!now.count(path)) changes.push_back({FileChange::Kind::removed, path});
  files_ = std::move(now);
  return changes;
}

} // namespace berth::agent
