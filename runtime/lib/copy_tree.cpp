// tmpcopyup: copies what the image had under a tmpfs mount point into the new
// tmpfs. Data errors fail the mount; owners, modes, times and xattrs that the
// target refuses (a user namespace, an LSM) are kept best-effort.
#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/error.hpp"
#include "runtime/lib/mount_util.hpp"

namespace berth::mnt {

namespace {

void copy_xattrs(int src, int dst) {
  char names[4096];
  ssize_t len = ::flistxattr(src, names, sizeof names);
  if (len <= 0) return;
  std::string value;
  for (const char* name = names; name < names + len; name += std::strlen(name) + 1) {
    ssize_t n = ::fgetxattr(src, name, nullptr, 0);
    if (n < 0) continue;
    value.resize(static_cast<size_t>(n));
    n = ::fgetxattr(src, name, value.data(), value.size());
    if (n >= 0) ::fsetxattr(dst, name, value.data(), static_cast<size_t>(n), 0);
  }
}

// Owner first: chown clears set-id bits, which the chmod then restores.
void copy_metadata(int fd, const struct stat& st) {
  ::fchown(fd, st.st_uid, st.st_gid);
  ::fchmod(fd, st.st_mode & 07777);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::futimens(fd, times);
}

void copy_file(int src_dir, int dst_dir, const char* name, const struct stat& st) {
  UniqueFd in(::openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) fail_errno("open {}", name);
  UniqueFd out(
      ::openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0777));
  if (!out) fail_errno("create {}", name);
  for (off_t left = st.st_size; left > 0;) {
    ssize_t n = ::sendfile(out.get(), in.get(), nullptr, static_cast<size_t>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("copy {}", name);
    if (n == 0) break; // the file shrank
    left -= n;
  }
  copy_xattrs(in.get(), out.get());
  copy_metadata(out.get(), st);
}

void copy_dir(int src, int dst);

void copy_entry(int src_dir, int dst_dir, const char* name) {
  struct stat st;
  if (::fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) fail_errno("stat {}", name);
  switch (st.st_mode & S_IFMT) {
  case S_IFREG: copy_file(src_dir, dst_dir, name, st); return;
  case S_IFDIR: {
    if (::mkdirat(dst_dir, name, 0700) < 0) fail_errno("mkdir {}", name);
    UniqueFd in(::openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    UniqueFd out(::openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!in || !out) fail_errno("open directory {}", name);
    with_context(name, [&] { copy_dir(in.get(), out.get()); });
    copy_xattrs(in.get(), out.get());
    copy_metadata(out.get(), st); // last: the copy touched its times
    return;
  }
  case S_IFLNK: {
    char target[4096];
    ssize_t n = ::readlinkat(src_dir, name, target, sizeof target - 1);
    if (n < 0) fail_errno("read link {}", name);
    target[n] = '\0';
    if (::symlinkat(target, dst_dir, name) < 0) fail_errno("symlink {}", name);
    break;
  }
  default: // fifos, sockets, device nodes
    if (::mknodat(dst_dir, name, st.st_mode, st.st_rdev) < 0) fail_errno("mknod {}", name);
    break;
  }
  ::fchownat(dst_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
  if (!S_ISLNK(st.st_mode)) ::fchmodat(dst_dir, name, st.st_mode & 07777, 0);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::utimensat(dst_dir, name, times, AT_SYMLINK_NOFOLLOW);
}

void copy_dir(int src, int dst) {
  // fdopendir takes ownership of its fd: give it a fresh one.
  int dup_fd = ::openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0) fail_errno("open directory");
  DIR* dir = ::fdopendir(dup_fd);
  if (!dir) {
    ::close(dup_fd);
    fail_errno("open directory");
  }
  struct Closer {
    DIR* d;
    ~Closer() { ::closedir(d); }
  } closer{dir};
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(dir);
    if (!e) break;
    if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
      continue;
    copy_entry(src, dst, e->d_name);
  }
  if (errno != 0) fail_errno("read directory");
}

} // namespace

void copy_tree(int src_dir, int dst_dir) {
  copy_dir(src_dir, dst_dir);
}

} // namespace berth::mnt
