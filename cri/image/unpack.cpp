#include "cri/image/unpack.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <memory>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "cri/image/archive_lazy.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr size_t kMaxName = 160;  // bytes of an entry name quoted in a message

// libarchive's table while apply_layer runs on this thread (the library is loaded on demand).
thread_local const ArchiveApi* ar = nullptr;
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

struct ArchiveFree {
  void operator()(archive* a) const { ar->read_free(a); }
};

struct ReadCtx {
  Decompressor* stream;
  std::vector<char> buf = std::vector<char>(256 * 1024);
  std::exception_ptr error;
};

la_ssize_t read_cb(archive*, void* p, const void** out) {
  auto* ctx = static_cast<ReadCtx*>(p);
  try {
    size_t n = ctx->stream->read(ctx->buf.data(), ctx->buf.size());
    *out = ctx->buf.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    ctx->error = std::current_exception();
    return -1;
  }
}

// Names as bytes, whatever the process locale: pax names are UTF-8 (which the *_utf8
// getters return as they are, where the plain ones would fail to convert them to a C
// locale), ustar names are raw bytes (the plain getters return those untouched).
const char* entry_path(archive_entry* e) {
  const char* p = ar->entry_pathname_utf8(e);
  return p ? p : ar->entry_pathname(e);
}
const char* entry_symlink(archive_entry* e) {
  const char* p = ar->entry_symlink_utf8(e);
  return p ? p : ar->entry_symlink(e);
}
const char* entry_hardlink(archive_entry* e) {
  const char* p = ar->entry_hardlink_utf8(e);
  return p ? p : ar->entry_hardlink(e);
}

std::pair<std::string, std::string> split_parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

class Applier {
public:
  Applier(const std::string& root_dir, const std::vector<std::string>& parents, bool start_writeback)
      : parents_(parents), start_writeback_(start_writeback) {
    root_.reset(::open(root_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root_) fail_errno("open snapshot directory {}", root_dir);
  }

  void apply(archive* a, archive_entry* e) {
    std::string name = clean_entry_path(entry_path(e) ? entry_path(e) : "");
    if (name.size() > PATH_MAX) fail("the name is longer than {} bytes", PATH_MAX);
    if (name.empty()) return;  // the root itself: the snapshot directory keeps its own metadata
    auto [parent, base] = split_parent(name);
    if (base.starts_with(kWhiteoutPrefix)) return whiteout(parent, base);
    UniqueFd dir = make_dirs(parent);
    const char* hardlink = entry_hardlink(e);
    mode_t type = ar->entry_filetype(e);
    struct stat old;
    if (::fstatat(dir.get(), base.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0) {
      // A later entry replaces an earlier one, except a directory over a directory.
      if (!(S_ISDIR(old.st_mode) && type == AE_IFDIR && !hardlink)) remove_tree_at(dir.get(), base);
    }
    mode_t perm = ar->entry_perm(e) & 07777;
    if (hardlink) {
      std::string target = clean_entry_path(hardlink);
      if (target.size() > PATH_MAX) fail("hardlink target longer than {} bytes", PATH_MAX);
      return link(dir.get(), base, target);
    }
    switch (type) {
    case AE_IFDIR:
      if (::mkdirat(dir.get(), base.c_str(), 0700) < 0 && errno != EEXIST) fail_errno("mkdir {}", name);
      return finish_dir(a, e, dir.get(), base, name, perm);
    case AE_IFREG:
      return write_file(a, e, dir.get(), base, name, perm);
    case AE_IFLNK:
      if (::symlinkat(entry_symlink(e) ? entry_symlink(e) : "", dir.get(), base.c_str()) < 0)
        fail_errno("symlink {}", name);
      own_and_time(e, dir.get(), base, name);
      return;
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      dev_t dev = type == AE_IFIFO ? 0 : makedev(ar->entry_rdevmajor(e), ar->entry_rdevminor(e));
      if (::mknodat(dir.get(), base.c_str(), type | perm, dev) < 0) {
        // Unprivileged (user namespace) unpack: containerd skips device nodes it cannot make.
        if (errno == EPERM && type != AE_IFIFO) {
          log::warn("unpack: skipping device node {} (not permitted)", name);
          return;
        }
        fail_errno("mknod {}", name);
      }
      own_and_time(e, dir.get(), base, name);
      if (::fchmodat(dir.get(), base.c_str(), perm, 0) < 0) fail_errno("chmod {}", name);
      return;
    }
    default:
      log::warn("unpack: skipping {} of unsupported type {:o}", name, type);
      return;
    }
  }

  // Directory times last: creating entries inside a directory changes its mtime.
  void finish() {
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      UniqueFd d = open_in_root(root_.get(), it->first, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (d) ::futimens(d.get(), it->second.data());
    }
  }

  int root() const { return root_.get(); }

private:
  // Opens `path` (a directory inside the root), creating missing components. A created
  // directory copies owner, mode and times from the same directory in a lower layer (an
  // upper directory's metadata hides the lower one's under overlay), else 0755 root.
  UniqueFd make_dirs(const std::string& path) {
    UniqueFd cur = open_in_root(root_.get(), path, O_RDONLY | O_DIRECTORY);
    if (cur) return cur;
    if (errno != ENOENT) fail_errno("open directory {} in the layer", path.empty() ? "/" : path);
    // Up to the deepest directory that exists, then down creating the rest (no recursion:
    // a name may have some two thousand components).
    std::vector<std::string> missing{path};  // deepest first
    while (true) {
      std::string parent = split_parent(missing.back()).first;
      cur = open_in_root(root_.get(), parent, O_RDONLY | O_DIRECTORY);
      if (cur) break;
      if (errno != ENOENT || parent.empty())
        fail_errno("open directory {} in the layer", parent.empty() ? "/" : parent);
      missing.push_back(std::move(parent));
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      const std::string& dir = *it;
      std::string base = split_parent(dir).second;
      if (::mkdirat(cur.get(), base.c_str(), 0755) < 0 && errno != EEXIST) fail_errno("mkdir {}", dir);
      cur = open_in_root(root_.get(), dir, O_RDONLY | O_DIRECTORY);
      if (!cur) fail_errno("open directory {} in the layer (a dangling symlink in the path?)", dir);
      for (auto& p : parents_) {
        UniqueFd proot(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        UniqueFd lower = proot ? open_in_root(proot.get(), dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) : UniqueFd();
        struct stat st;
        if (!lower || ::fstat(lower.get(), &st) < 0) continue;
        if (::fchown(cur.get(), st.st_uid, st.st_gid) < 0 || ::fchmod(cur.get(), st.st_mode & 07777) < 0)
          fail_errno("copy metadata of directory {} from a lower layer", dir);
        dir_times_.emplace_back(dir, std::array<timespec, 2>{st.st_atim, st.st_mtim});
        break;
      }
    }
    return cur;
  }

  void whiteout(const std::string& parent, const std::string& base) {
    UniqueFd dir = make_dirs(parent);
    if (base == kOpaqueMarker) {
      if (::fsetxattr(dir.get(), "trusted.overlay.opaque", "y", 1, 0) < 0)
        fail_errno("set trusted.overlay.opaque on {}", parent.empty() ? "/" : parent);
      return;
    }
    if (base.starts_with(".wh..wh.")) return;  // other AUFS metadata (.wh..wh.plnk, ...)
    std::string target = base.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == "..") fail("invalid whiteout {}/{}", parent, base);
    remove_tree_at(dir.get(), target);
    if (::mknodat(dir.get(), target.c_str(), S_IFCHR | 0, makedev(0, 0)) < 0)
      fail_errno("whiteout {}/{}", parent, target);
  }

  void link(int dir, const std::string& base, const std::string& target) {
    if (target.empty()) fail("hardlink {} to the layer root", base);
    auto [tparent, tbase] = split_parent(target);
    UniqueFd tdir = open_in_root(root_.get(), tparent, O_RDONLY | O_DIRECTORY);
    struct stat st;
    if (!tdir || ::fstatat(tdir.get(), tbase.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      copy_up(target);
      tdir = open_in_root(root_.get(), tparent, O_RDONLY | O_DIRECTORY);
      if (!tdir) fail_errno("hardlink target directory {}", tparent);
    }
    // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself, never followed.
    if (::linkat(tdir.get(), tbase.c_str(), dir, base.c_str(), 0) < 0) fail_errno("hardlink {} to {}", base, target);
  }

  // A hardlink to a file of a lower layer: copy it into this layer first.
  void copy_up(const std::string& target) {
    for (auto& p : parents_) {
      UniqueFd proot(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!proot) continue;
      UniqueFd src = open_in_root(proot.get(), target, O_RDONLY | O_NOFOLLOW);
      if (!src) continue;
      struct stat st;
      if (::fstat(src.get(), &st) < 0 || !S_ISREG(st.st_mode)) fail("hardlink target {} is not a regular file", target);
      auto [tparent, tbase] = split_parent(target);
      UniqueFd dir = make_dirs(tparent);
      UniqueFd dst(::openat(dir.get(), tbase.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!dst) fail_errno("copy up {}", target);
      for (off_t left = st.st_size; left > 0;) {
        ssize_t n = ::copy_file_range(src.get(), nullptr, dst.get(), nullptr, static_cast<size_t>(left), 0);
        if (n <= 0) fail_errno("copy up {}", target);
        left -= n;
      }
      if (::fchown(dst.get(), st.st_uid, st.st_gid) < 0 || ::fchmod(dst.get(), st.st_mode & 07777) < 0)
        fail_errno("copy up {}", target);
      return;
    }
    fail_code(ENOENT, "hardlink target {} not found in the layer or its parents", target);
  }

  void write_file(archive* a, archive_entry* e, int dir, const std::string& base, const std::string& name,
                  mode_t perm) {
    UniqueFd fd(::openat(dir, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) fail_errno("create {}", name);
    const void* buf;
    size_t len;
    la_int64_t offset;
    int64_t end = 0;
    while (true) {
      int rc = ar->read_data_block(a, &buf, &len, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) fail("read {} from the layer: {}", name, bounded_message(ar->error_string(a), 512));
      const char* p = static_cast<const char*>(buf);
      for (size_t done = 0; done < len;) {  // pwrite at the block's offset keeps sparse holes
        ssize_t n = ::pwrite(fd.get(), p + done, len - done, offset + static_cast<off_t>(done));
        if (n < 0) {
          if (errno == EINTR) continue;
          fail_errno("write {}", name);
        }
        done += static_cast<size_t>(n);
      }
      end = std::max<int64_t>(end, offset + static_cast<int64_t>(len));
    }
    int64_t size = ar->entry_size(e);
    if (size > end && ::ftruncate(fd.get(), size) < 0) fail_errno("truncate {}", name);
    if (::fchown(fd.get(), ar->entry_uid(e), ar->entry_gid(e)) < 0) fail_errno("chown {}", name);
    set_xattrs(e, fd.get(), name);
    // After chown, which clears setuid/setgid.
    if (::fchmod(fd.get(), perm) < 0) fail_errno("chmod {}", name);
    timespec ts[2] = {{ar->entry_atime(e), ar->entry_atime_nsec(e)},
                      {ar->entry_mtime(e), ar->entry_mtime_nsec(e)}};
    if (!ar->entry_atime_is_set(e)) ts[0] = ts[1];
    ::futimens(fd.get(), ts);
    if (start_writeback_ && end > 0) ::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  }

  void finish_dir(archive*, archive_entry* e, int dir, const std::string& base, const std::string& name,
                  mode_t perm) {
    UniqueFd d(::openat(dir, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d) fail_errno("open directory {}", name);
    if (::fchown(d.get(), ar->entry_uid(e), ar->entry_gid(e)) < 0) fail_errno("chown {}", name);
    set_xattrs(e, d.get(), name);
    if (::fchmod(d.get(), perm) < 0) fail_errno("chmod {}", name);
    std::array<timespec, 2> ts{timespec{ar->entry_mtime(e), ar->entry_mtime_nsec(e)},
                               timespec{ar->entry_mtime(e), ar->entry_mtime_nsec(e)}};
    dir_times_.emplace_back(name, ts);
  }

  void own_and_time(archive_entry* e, int dir, const std::string& base, const std::string& name) {
    if (::fchownat(dir, base.c_str(), ar->entry_uid(e), ar->entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
      fail_errno("chown {}", name);
    timespec ts[2] = {{ar->entry_mtime(e), ar->entry_mtime_nsec(e)},
                      {ar->entry_mtime(e), ar->entry_mtime_nsec(e)}};
    ::utimensat(dir, base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }

  void set_xattrs(archive_entry* e, int fd, const std::string& name) {
    ar->entry_xattr_reset(e);
    const char* key;
    const void* value;
    size_t size;
    while (ar->entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
      std::string_view k(key);
      if (k.starts_with("trusted.overlay.")) {
        log::warn("unpack: dropping xattr {} on {} (overlay metadata is not taken from layers)", k, name);
        continue;
      }
      if (::fsetxattr(fd, key, value, size, 0) < 0) {
        // As containerd: xattrs the filesystem or our privileges do not allow are skipped.
        if (errno == ENOTSUP || errno == EPERM) {
          log::warn("unpack: cannot set xattr {} on {}: {}", k, name, std::strerror(errno));
          continue;
        }
        fail_errno("set xattr {} on {}", k, name);
      }
    }
  }

  UniqueFd root_;
  const std::vector<std::string>& parents_;
  bool start_writeback_;
  std::vector<std::pair<std::string, std::array<timespec, 2>>> dir_times_;
};

} // namespace

std::string clean_entry_path(std::string_view name) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    std::string_view comp = name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (comp == "..") {
      if (parts.empty()) fail("layer entry {} points outside the layer root", excerpt(name, kMaxName));
      parts.pop_back();
    } else if (!comp.empty() && comp != ".") {
      parts.push_back(comp);
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  std::string out;
  for (auto& p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

UnpackStats apply_layer(const std::string& root_dir, Decompressor& tar_stream,
                        const std::vector<std::string>& parent_dirs, bool start_writeback) {
  std::string load_error;
  const ArchiveApi* api = ArchiveLibrary::instance().acquire(load_error);
  if (!api) fail("unpack: {}", load_error);
  struct Use {
    const ArchiveApi* saved = ar;
    explicit Use(const ArchiveApi* a) { ar = a; }
    ~Use() {
      ar = saved;
      ArchiveLibrary::instance().release();
    }
  } use(api);
  Applier applier(root_dir, parent_dirs, start_writeback);
  std::unique_ptr<archive, ArchiveFree> a(ar->read_new());
  ar->read_support_format_tar(a.get());
  ar->read_support_filter_none(a.get());
  ReadCtx ctx{&tar_stream, std::vector<char>(256 * 1024), nullptr};
  if (ar->read_open(a.get(), &ctx, nullptr, read_cb, nullptr) != ARCHIVE_OK) {
    if (ctx.error) std::rethrow_exception(ctx.error);
    fail("open layer tar: {}", bounded_message(ar->error_string(a.get()), 512));
  }
  UnpackStats stats;
  while (true) {
    archive_entry* e = nullptr;
    int rc = ar->read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (ctx.error) std::rethrow_exception(ctx.error);
    if (rc < ARCHIVE_WARN) fail("read layer tar: {}", bounded_message(ar->error_string(a.get()), 512));
    const char* path = entry_path(e);
    with_context(fmt::format("layer entry {}", excerpt(path ? path : "", kMaxName)), [&] { applier.apply(a.get(), e); });
    if (ctx.error) std::rethrow_exception(ctx.error);
    stats.entries++;
  }
  applier.finish();
  stats.bytes = static_cast<uint64_t>(ar->filter_bytes(a.get(), -1));
  return stats;
}

} // namespace berth::image
