#include "cri/image/archive_lazy.hpp"

namespace berth::image {

ArchiveLibrary& ArchiveLibrary::instance() {
  static ArchiveLibrary* lib = new ArchiveLibrary();  // never destroyed
  return *lib;
}

bool ArchiveLibrary::bind(std::string& error) {
#define BERTH_AR(name) sym("archive_" #name, api_.name, error)
  BERTH_AR(read_new);
  BERTH_AR(read_support_format_tar);
  BERTH_AR(read_support_filter_none);
  BERTH_AR(read_open);
  BERTH_AR(read_next_header);
  BERTH_AR(read_data_block);
  BERTH_AR(read_free);
  BERTH_AR(error_string);
  BERTH_AR(filter_bytes);
  BERTH_AR(entry_atime);
  BERTH_AR(entry_atime_is_set);
  BERTH_AR(entry_atime_nsec);
  BERTH_AR(entry_filetype);
  BERTH_AR(entry_gid);
  BERTH_AR(entry_uid);
  BERTH_AR(entry_hardlink);
  BERTH_AR(entry_hardlink_utf8);
  BERTH_AR(entry_pathname);
  BERTH_AR(entry_pathname_utf8);
  BERTH_AR(entry_symlink);
  BERTH_AR(entry_symlink_utf8);
  BERTH_AR(entry_mtime);
  BERTH_AR(entry_mtime_nsec);
  BERTH_AR(entry_perm);
  BERTH_AR(entry_rdevmajor);
  BERTH_AR(entry_rdevminor);
  BERTH_AR(entry_size);
  BERTH_AR(entry_xattr_reset);
  BERTH_AR(entry_xattr_next);
#undef BERTH_AR
  return error.empty();
}

} // namespace berth::image
