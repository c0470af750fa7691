#include "agent/lib/fs_beneath.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/openat2.hpp"

namespace berth::agent {
namespace {

// Guards against a tree that keeps growing while it is removed (nothing should write
// into a pod's directory once its containers are gone): far more steps than any real
// tree needs, far fewer than "forever".
constexpr uint64_t kMaxRemoveSteps = 50'000'000;
constexpr size_t kBatch = 4096;

// Up to max names of the directory dir_fd, read through a fresh open file description
// (so each call starts at the beginning, whatever was removed or added meanwhile).
std::vector<std::string> read_names(int dir_fd, size_t max) {
  std::vector<std::string> out;
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno("read directory");
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int saved = errno;
    ::close(fd);
    fail_code(saved, "read directory");
  }
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    out.emplace_back(n);
    if (out.size() >= max) break;
  }
  ::closedir(d);
  return out;
}

std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string fd_path(int fd) {
  char buf[4096];
  auto link = fmt::format("/proc/self/fd/{}", fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) fail_errno("readlink {}", link);
  return std::string(buf, static_cast<size_t>(n));
}

// Empties the directory top (on mount mnt) without recursion: files are unlinked, an
// empty subdirectory is removed, a non-empty one has its entries renamed up into top
// (under fresh names) and is removed at the next pass. Each entry is renamed at most
// once per level it sits below top, and only two directories are open at any time.
void empty_directory(int top, uint64_t mnt, const std::string& what) {
  uint64_t steps = 0, seq = 0;
  auto step = [&] {
    if (++steps > kMaxRemoveSteps) fail("remove {}: the tree keeps changing, giving up", what);
  };
  while (true) {
    auto names = read_names(top, kBatch);
    if (names.empty()) return;
    for (auto& n : names) {
      step();
      if (::unlinkat(top, n.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR && errno != EPERM) fail_errno("remove {}/{}", what, n);
      if (::unlinkat(top, n.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) continue;
      if (errno == EBUSY) fail_code(EBUSY, "remove {}: a mount point is in the way", what);
      if (errno != ENOTEMPTY && errno != EEXIST) fail_errno("remove {}/{}", what, n);
      UniqueFd child(::openat(top, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) {
        if (errno == ENOENT) continue;
        fail_errno("remove {}/{}", what, n);
      }
      if (mount_id(child.get()) != mnt) fail_code(EBUSY, "remove {}: a mount point is in the way", what);
      while (true) {
        auto sub = read_names(child.get(), kBatch);
        if (sub.empty()) break;
        for (auto& g : sub) {
          while (true) {
            step();
            auto tmp = fmt::format(".berthlet-rm.{}", seq++);
            if (::renameat2(child.get(), g.c_str(), top, tmp.c_str(), RENAME_NOREPLACE) == 0 || errno == ENOENT) break;
            if (errno == EEXIST) continue;
            if (errno == EBUSY || errno == EXDEV) fail_code(EBUSY, "remove {}: a mount point is in the way", what);
            fail_errno("remove {}: move an entry up", what);
          }
        }
      }
      if (::unlinkat(top, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT && errno != ENOTEMPTY)
        fail_errno("remove {}/{}", what, n);
    }
  }
}

} // namespace

uint64_t mount_id(int fd) {
  struct statx stx = {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0) fail_errno("statx");
  if (stx.stx_mask & STATX_MNT_ID) return stx.stx_mnt_id;
  return makedev(stx.stx_dev_major, stx.stx_dev_minor) | (uint64_t{1} << 63);
}

UniqueFd open_beneath(int dir_fd, const std::string& rel, int flags) {
  return open_in_root(dir_fd, rel, flags, RESOLVE_NO_SYMLINKS);
}

UniqueFd open_or_make_beneath(int dir_fd, const std::string& rel, mode_t mode, bool final_any) {
  std::vector<std::string> parts;
  for (auto& p : split(rel, '/'))
    if (p != ".") parts.push_back(p);
  UniqueFd cur(::openat(dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur) fail_errno("open directory");
  std::string so_far;
  for (size_t i = 0; i < parts.size(); i++) {
    const auto& part = parts[i];
    if (part == "..") fail("{}: '..' is not allowed", quoted_value(rel)); // callers validate; never trust it here
    so_far = so_far.empty() ? part : so_far + "/" + part;
    bool last = i + 1 == parts.size();
    int flags = O_PATH | (last && final_any ? 0 : O_DIRECTORY);
    UniqueFd next = open_beneath(cur.get(), part, flags);
    if (!next && errno == ENOENT) {
      if (::mkdirat(cur.get(), part.c_str(), mode) != 0 && errno != EEXIST) fail_errno("create {}", quoted_value(so_far));
      next = open_beneath(cur.get(), part, O_PATH | O_DIRECTORY);
    }
    if (!next) {
      if (errno == ELOOP) fail_code(ELOOP, "{} is a symlink (symlinks are not followed here)", quoted_value(so_far));
      if (errno == ENOTDIR) fail_code(ENOTDIR, "{} is not a directory", quoted_value(so_far));
      fail_errno("open {}", quoted_value(so_far));
    }
    cur = std::move(next);
  }
  return cur;
}

void remove_tree_beneath(int dir_fd, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    fail("remove {}: not a single directory entry", quoted_value(name));
  if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) fail_errno("remove {}", name);
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return;
  if (errno == EBUSY) fail_code(EBUSY, "remove {}: it is a mount point", name);
  UniqueFd top(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top) {
    if (errno == ENOENT) return;
    fail_errno("remove {}", name);
  }
  auto mnt = mount_id(dir_fd);
  if (mount_id(top.get()) != mnt) fail_code(EBUSY, "remove {}: it is a mount point", name);
  empty_directory(top.get(), mnt, name);
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) fail_errno("remove {}", name);
}

std::vector<std::string> mounts_beneath(int dir_fd) {
  auto base = fd_path(dir_fd);
  std::vector<std::string> out;
  if (base.empty() || base[0] != '/') return out; // deleted or not a path
  auto info = read_file("/proc/self/mountinfo");
  for (auto& line : split(info, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 5) continue;
    auto mp = unescape_mountinfo(fields[4]);
    if (mp == base) out.push_back("");
    else if (base == "/" && mp.size() > 1) out.push_back(mp.substr(1));
    else if (mp.size() > base.size() && mp.compare(0, base.size(), base) == 0 && mp[base.size()] == '/')
      out.push_back(mp.substr(base.size() + 1));
  }
  // Deepest first; the same mount point twice (stacked mounts) stays twice.
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') + !a.empty() > std::count(b.begin(), b.end(), '/') + !b.empty();
  });
  return out;
}

void unmount_beneath(int dir_fd, const std::string& rel) {
  auto under = [&](const std::string& m) {
    return rel.empty() || m == rel || (m.size() > rel.size() && m.compare(0, rel.size(), rel) == 0 && m[rel.size()] == '/');
  };
  // Each pass unmounts the top of every stack; stacks are short (a bind per container start).
  for (int pass = 0; pass < 64; pass++) {
    std::vector<std::string> todo;
    for (auto& m : mounts_beneath(dir_fd))
      if (under(m)) todo.push_back(m);
    if (todo.empty()) return;
    for (auto& m : todo) {
      UniqueFd fd = open_beneath(dir_fd, m, O_PATH);
      if (!fd) {
        if (errno == ENOENT) continue; // gone meanwhile
        fail_errno("unmount {}: open", quoted_value(m));
      }
      auto link = fmt::format("/proc/self/fd/{}", fd.get());
      if (::umount2(link.c_str(), MNT_DETACH) != 0 && errno != EINVAL) fail_errno("unmount {}", quoted_value(m));
    }
  }
  fail("unmount {}: mounts keep coming back", quoted_value(rel));
}

} // namespace berth::agent
