// Resolving container paths on the host side without escaping the rootfs: the
// image is untrusted, so "/etc -> /../../../host" must land in <rootfs>/host.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include "common/error.hpp"
#include "runtime/lib/mount_util.hpp"

namespace berth::mnt {

KernelApis& kernel_apis() {
  static KernelApis apis = [] {
    KernelApis a;
    // mount_setattr (5.12) is the newest call of the new mount API we use; an
    // invalid size makes it fail with EINVAL before doing anything.
    a.new_mount = !(::mount_setattr(-1, "", 0, nullptr, 0) < 0 && errno == ENOSYS);
    return a;
  }();
  return apis;
}

ProcFdPath::ProcFdPath(int fd) {
  std::snprintf(buf_, sizeof buf_, "/proc/self/fd/%d", fd);
}

std::string clean_path(std::string_view path) {
  std::string out;
  out.reserve(path.size() + 1);
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      out.resize(out.empty() ? 0 : out.rfind('/'));
      continue;
    }
    out += '/';
    out += part;
  }
  if (out.empty()) out.push_back('/');
  return out;
}

namespace {

constexpr int kMaxSymlinks = 40; // as the kernel's MAXSYMLINKS

bool is_directory(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

bool creates_file(Create create, int source_fd) {
  return create == Create::file || (create == Create::like_source && !is_directory(source_fd));
}

// Creates `name` in `dir` as a directory or an empty file; EEXIST is left to the caller.
int make_node(int dir, const char* name, bool as_file) {
  if (!as_file) return ::mkdirat(dir, name, 0755);
  return ::mknodat(dir, name, S_IFREG | 0644, 0);
}

// One openat2 call; the fd, or -errno. EAGAIN means a concurrent rename raced
// with a ".." lookup: retry a few times.
int openat2_in_root(int root_fd, const std::string& path, bool nofollow_dir) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC | (nofollow_dir ? O_NOFOLLOW | O_DIRECTORY : 0);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0; attempt < 16; attempt++) {
    long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != EAGAIN && errno != EINTR) return -errno;
  }
  return -EAGAIN;
}

// The fallback: walks one component at a time with O_NOFOLLOW, expanding
// symlinks by hand. `dirs` holds the real directories from the root down, so
// ".." pops one and an absolute link target empties it: nothing goes above root.
Resolved walk_in_root(int root_fd, std::string_view path, Create create, int source_fd, bool nofollow_dir) {
  std::vector<UniqueFd> dirs;
  auto current = [&] { return dirs.empty() ? root_fd : dirs.back().get(); };
  std::string todo(path); // components still to walk; link targets are spliced in front
  size_t pos = 0;
  int links = 0;
  bool existed = true;
  for (;;) {
    while (pos < todo.size() && todo[pos] == '/') pos++;
    if (pos >= todo.size()) break;
    size_t end = std::min(todo.find('/', pos), todo.size());
    std::string name = todo.substr(pos, end - pos);
    pos = end;
    bool last = todo.find_first_not_of('/', pos) == std::string::npos;
    if (name == ".") continue;
    if (name == "..") {
      if (!dirs.empty()) dirs.pop_back();
      continue;
    }

    UniqueFd fd(::openat(current(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd && errno == ENOENT && create != Create::no) {
      bool as_file = last && creates_file(create, source_fd);
      if (make_node(current(), name.c_str(), as_file) < 0 && errno != EEXIST)
        fail_errno("create {} inside the rootfs", std::string_view(todo).substr(0, end));
      fd.reset(::openat(current(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
      if (last) existed = false;
    }
    if (!fd) fail_errno("resolve {} inside the rootfs", path);

    struct stat st;
    if (::fstat(fd.get(), &st) < 0) fail_errno("stat {} inside the rootfs", path);
    if (S_ISLNK(st.st_mode)) {
      if (last && nofollow_dir) fail_code(ENOTDIR, "resolve {} inside the rootfs", path);
      if (++links > kMaxSymlinks) fail_code(ELOOP, "resolve {} inside the rootfs", path);
      char target[4096];
      ssize_t n = ::readlinkat(fd.get(), "", target, sizeof target);
      if (n < 0) fail_errno("read link {} inside the rootfs", path);
      if (static_cast<size_t>(n) >= sizeof target) fail_code(ENAMETOOLONG, "read link {}", path);
      std::string rest = todo.substr(pos);
      todo.assign(target, static_cast<size_t>(n));
      todo += rest;
      pos = 0;
      if (todo[0] == '/') dirs.clear();
      continue;
    }
    if (last) {
      if (nofollow_dir && !S_ISDIR(st.st_mode)) fail_code(ENOTDIR, "{} inside the rootfs", path);
      return {std::move(fd), existed};
    }
    if (!S_ISDIR(st.st_mode)) fail_code(ENOTDIR, "resolve {} inside the rootfs", path);
    dirs.push_back(std::move(fd));
  }
  // The path ended on a directory already walked ("/", "a/..", or a link to one).
  UniqueFd fd(::openat(current(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail_errno("resolve {} inside the rootfs", path);
  return {std::move(fd), existed};
}

} // namespace

Resolved open_in_root(int root_fd, std::string_view path, Create create, int source_fd, bool nofollow_dir) {
  if (!kernel_apis().openat2) return walk_in_root(root_fd, path, create, source_fd, nofollow_dir);

  std::string p(path);
  int fd = openat2_in_root(root_fd, p, nofollow_dir);
  if (fd >= 0) return {UniqueFd(fd), true};
  if (fd == -ENOSYS || fd == -E2BIG) { // no openat2, or an older struct open_how
    kernel_apis().openat2 = false;
    return walk_in_root(root_fd, path, create, source_fd, nofollow_dir);
  }
  if (fd != -ENOENT || create == Create::no) fail_code(-fd, "resolve {} inside the rootfs", path);

  // Missing: resolve (or create) the parent, then create the last component
  // there. A dangling symlink in the way (EEXIST) takes the slow walk, which
  // follows it inside the rootfs as the kernel would.
  std::string clean = clean_path(path);
  size_t slash = clean.rfind('/');
  if (clean == "/") fail_code(ENOENT, "resolve / inside the rootfs");
  Resolved parent =
      open_in_root(root_fd, std::string_view(clean).substr(0, slash ? slash : 1), Create::directory);
  const char* name = clean.c_str() + slash + 1;
  bool as_file = creates_file(create, source_fd);
  if (make_node(parent.fd.get(), name, as_file) < 0) {
    if (errno != EEXIST) fail_errno("create {} inside the rootfs", clean);
    return walk_in_root(root_fd, clean, create, source_fd, nofollow_dir);
  }
  UniqueFd created(::openat(parent.fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!created) fail_errno("open {} inside the rootfs", clean);
  return {std::move(created), false};
}

} // namespace berth::mnt
