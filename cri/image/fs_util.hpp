// Directory helpers for the snapshotter and the unpacker: fd-relative, never following
// symlinks out of the tree they work on.
#pragma once

#include <cstdint>
#include <string>

#include "common/fd.hpp"
#include "common/openat2.hpp"

namespace berth::image {

// openat2(RESOLVE_IN_ROOT), common/openat2.hpp.
using berth::open_in_root;

// Removes a directory tree (or a single entry) relative to dirfd; ENOENT is not an error.
void remove_tree_at(int dirfd, const std::string& name);
void remove_tree(const std::string& path);

struct TreeUsage {
  uint64_t bytes = 0;   // allocated blocks * 512, each inode once
  uint64_t inodes = 0;
};
TreeUsage tree_usage(const std::string& path);

} // namespace berth::image
