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

void remove_children(int dirfd, const std::string& what) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) fail_errno("remove {}", what);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    fail_errno("remove {}", what);
  }
  std::vector<std::pair<std::string, bool>> entries;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    entries.emplace_back(n, e->d_type == DT_DIR);
  }
  ::closedir(d);
  for (auto& [name, is_dir] : entries) {
    if (::unlinkat(dirfd, name.c_str(), is_dir ? AT_REMOVEDIR : 0) == 0 || errno == ENOENT) continue;
    if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST || errno == EPERM || is_dir)
      remove_tree_at(dirfd, name);
    else
      fail_errno("remove {}/{}", what, name);
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
  remove_children(sub.get(), name);
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

namespace {

void usage_walk(int dirfd, TreeUsage& u, std::set<std::pair<dev_t, ino_t>>& seen) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  DIR* d = dup < 0 ? nullptr : ::fdopendir(dup);
  if (!d) {
    if (dup >= 0) ::close(dup);
    return;
  }
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    if (st.st_nlink > 1 && !seen.insert({st.st_dev, st.st_ino}).second) continue;
    u.inodes++;
    u.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub) usage_walk(sub.get(), u, seen);
    }
  }
  ::closedir(d);
}

} // namespace

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
  usage_walk(dir.get(), u, seen);
  return u;
}

} // namespace berth::image
