// Helpers shared by the image library's tests: temp dirs, tar building with libarchive's
// writer, reading files back.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"

namespace berth::image::testing {

class TempDir {
public:
  TempDir() {
    std::string tmpl = "/var/tmp/berth-image-test-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    try {
      remove_tree(path_);
    } catch (...) {
    }
  }
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view sub) const { return path_ + "/" + std::string(sub); }

private:
  std::string path_;
};

struct TarEntry {
  std::string name;
  mode_t type = AE_IFREG;
  std::string data;        // file content
  std::string link;        // symlink target
  std::string hardlink;    // hardlink target
  mode_t perm = 0644;
  unsigned dev_major = 0, dev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// An uncompressed (or gzip/zstd, filter = "gzip" / "zstd") tar stream.
inline std::string make_tar(const std::vector<TarEntry>& entries, const std::string& filter = "") {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (filter == "gzip") archive_write_add_filter_gzip(a);
  if (filter == "zstd") archive_write_add_filter_zstd(a);
  std::vector<char> buf(64 << 20);
  size_t used = 0;
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (auto& e : entries) {
    archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.name.c_str());
    archive_entry_set_mtime(en, 1700000000, 0);
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(en, e.hardlink.c_str());
      archive_entry_set_filetype(en, AE_IFREG);
    } else {
      archive_entry_set_filetype(en, e.type);
    }
    archive_entry_set_perm(en, e.perm);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(en, e.link.c_str());
    if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(en, e.dev_major);
      archive_entry_set_rdevminor(en, e.dev_minor);
    }
    for (auto& [k, v] : e.xattrs) archive_entry_xattr_add_entry(en, k.c_str(), v.data(), v.size());
    archive_entry_set_size(en, e.type == AE_IFREG && e.hardlink.empty() ? e.data.size() : 0);
    archive_write_header(a, en);
    if (e.type == AE_IFREG && e.hardlink.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(en);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

inline bool exists_nofollow(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

} // namespace berth::image::testing
