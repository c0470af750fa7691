// Watches the manifest directories: inotify says "look now", a periodic full scan
// (fileCheckFrequency) catches whatever inotify cannot (a directory created later,
// an overflowed queue). scan() compares each file's identity (inode, size, mtime)
// with the last scan, so an unchanged file is never re-read.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/fd.hpp"

namespace berth::agent {

struct FileChange {
  enum class Kind { added, modified, removed } kind;
  std::string path;
};

class ManifestWatcher {
public:
  explicit ManifestWatcher(std::vector<std::string> dirs);
  // The inotify fd to poll; after it is readable, call drain() then scan().
  int fd() const { return inotify_.get(); }
  void drain();
  std::vector<FileChange> scan();

private:
  struct FileId {
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    bool operator==(const FileId&) const = default;
  };
  void ensure_watches();
  std::vector<std::string> dirs_;
  std::map<std::string, int> watches_; // dir -> wd
  std::map<std::string, FileId> files_;
  UniqueFd inotify_;
};

} // namespace berth::agent
