#include "cri/image/fs_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <utility>
#include <vector>

#include "common/error.hpp"

namespace berth::image {

namespace {

struct DirEntry {
  std::string name;
  unsigned char type;  // d_type (DT_UNKNOWN on some file systems)
};

std::vector<DirEntry> read_entries(int dirfd, const std::string& what) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) fail_errno("read directory {}", what);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    fail_errno("read directory {}", what);
  }
  ::rewinddir(d);
  std::vector<DirEntry> out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
    out.push_back({e->d_name, e->d_type});
  }
  ::closedir(d);
  return out;
}

// Depth-first walk of the tree under the directory `top`, with one directory fd open at a
// time and no recursion: a layer can nest directories far deeper than any stack (paths
// are resolved inside the layer, so symlinks let it go past PATH_MAX), and a file
// descriptor per level would run out. Going back up is openat(fd, "..") checked against
// the device and inode recorded on the way down. enter(dirfd, entry) returns true to
// descend into the entry (a directory); leave(parentfd, name) runs once a directory's
// content is done.
template <typename Enter, typename Leave>
void walk_tree(UniqueFd top, const std::string& what, Enter&& enter, Leave&& leave) {
  struct Level {
    std::string name;  // of this directory in its parent (empty for top)
    dev_t parent_dev = 0;
    ino_t parent_ino = 0;
    std::vector<DirEntry> entries;
    size_t next = 0;
  };
  UniqueFd cur = std::move(top);
  std::vector<Level> stack;
  stack.push_back({"", 0, 0, read_entries(cur.get(), what), 0});
  while (!stack.empty()) {
    Level& lv = stack.back();
    if (lv.next < lv.entries.size()) {
      DirEntry e = std::move(lv.entries[lv.next++]);
      if (!enter(cur.get(), e)) continue;
      UniqueFd sub(::openat(cur.get(), e.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) {
        if (errno == ENOENT) continue;
        fail_errno("open directory {} under {}", e.name, what);
      }
      struct stat st;
      if (::fstat(cur.get(), &st) < 0) fail_errno("stat a directory under {}", what);
      std::vector<DirEntry> entries = read_entries(sub.get(), what);
      if (lv.next == lv.entries.size()) {  // the parent's list is done: free it before going down
        lv.entries.clear();
        lv.entries.shrink_to_fit();
        lv.next = 0;
      }
      cur = std::move(sub);
      stack.push_back({std::move(e.name), st.st_dev, st.st_ino, std::move(entries), 0});
      continue;
    }
    if (stack.size() == 1) return;
    Level done = std::move(stack.back());
    stack.pop_back();
    UniqueFd parent(::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st;
    if (!parent || ::fstat(parent.get(), &st) < 0) fail_errno("open the parent of {} under {}", done.name, what);
    if (st.st_dev != done.parent_dev || st.st_ino != done.parent_ino)
      fail("{}: a directory was moved during the walk", what);
    cur = std::move(parent);
    leave(cur.get(), done.name);
  }
}

} // namespace

void remove_tree_at(int dirfd, const std::string& name) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) fail_errno("remove {}", name);
  UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub) {
    if (errno == ENOENT) return;
    fail_errno("open {} for removal", name);
  }
  walk_tree(
      std::move(sub), name,
      [&](int fd, const DirEntry& e) {
        bool is_dir = e.type == DT_DIR;
        if (::unlinkat(fd, e.name.c_str(), is_dir ? AT_REMOVEDIR : 0) == 0 || errno == ENOENT) return false;
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST || errno == EPERM || is_dir) return true;
        fail_errno("remove {} under {}", e.name, name);
      },
      [&](int parent, const std::string& dir) {
        if (::unlinkat(parent, dir.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
          fail_errno("remove directory {} under {}", dir, name);
      });
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) fail_errno("remove directory {}", name);
}

void remove_tree(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT) return;
    fail_errno("open {}", parent);
  }
  with_context(fmt::format("remove {}", path), [&] { remove_tree_at(dir.get(), path.substr(slash + 1)); });
}

TreeUsage tree_usage(const std::string& path) {
  TreeUsage u;
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT) return u;
    fail_errno("usage of {}", path);
  }
  struct stat st;
  if (::fstat(dir.get(), &st) == 0) {
    u.inodes = 1;
    u.bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  }
  std::set<std::pair<dev_t, ino_t>> seen;
  walk_tree(
      std::move(dir), path,
      [&](int fd, const DirEntry& e) {
        struct stat st;
        if (::fstatat(fd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return false;
        if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen.insert({st.st_dev, st.st_ino}).second) return false;
        u.inodes++;
        u.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
        return S_ISDIR(st.st_mode);
      },
      [](int, const std::string&) {});
  return u;
}

} // namespace berth::image
