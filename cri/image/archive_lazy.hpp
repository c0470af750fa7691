// libarchive (the tar reader of layer unpacking) through one typed table, loaded with
// dlopen while pulls run (common/lazy_library.hpp; cri/image/pull_libraries.hpp decides
// when). Linking it maps libxml2, ICU, nettle, lzma, ... into the idle daemon.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include "common/lazy_library.hpp"

namespace berth::image {

struct ArchiveApi {
  archive* (*read_new)();
  int (*read_support_format_tar)(archive*);
  int (*read_support_filter_none)(archive*);
  int (*read_open)(archive*, void*, archive_open_callback*, archive_read_callback*, archive_close_callback*);
  int (*read_next_header)(archive*, archive_entry**);
  int (*read_data_block)(archive*, const void**, size_t*, la_int64_t*);
  int (*read_free)(archive*);
  const char* (*error_string)(archive*);
  la_int64_t (*filter_bytes)(archive*, int);
  time_t (*entry_atime)(archive_entry*);
  int (*entry_atime_is_set)(archive_entry*);
  long (*entry_atime_nsec)(archive_entry*);
  mode_t (*entry_filetype)(archive_entry*);
  la_int64_t (*entry_gid)(archive_entry*);
  la_int64_t (*entry_uid)(archive_entry*);
  const char* (*entry_hardlink)(archive_entry*);
  const char* (*entry_hardlink_utf8)(archive_entry*);
  const char* (*entry_pathname)(archive_entry*);
  const char* (*entry_pathname_utf8)(archive_entry*);
  const char* (*entry_symlink)(archive_entry*);
  const char* (*entry_symlink_utf8)(archive_entry*);
  time_t (*entry_mtime)(archive_entry*);
  long (*entry_mtime_nsec)(archive_entry*);
  mode_t (*entry_perm)(archive_entry*);
  dev_t (*entry_rdevmajor)(archive_entry*);
  dev_t (*entry_rdevminor)(archive_entry*);
  la_int64_t (*entry_size)(archive_entry*);
  int (*entry_xattr_reset)(archive_entry*);
  int (*entry_xattr_next)(archive_entry*, const char**, const void**, size_t*);
};

class ArchiveLibrary final : public berth::LazyLibrary<ArchiveApi> {
public:
  static ArchiveLibrary& instance();

private:
  ArchiveLibrary() : LazyLibrary("libarchive.so.13") {}
  bool bind(std::string& error) override;
};

} // namespace berth::image
