// File system steps on trees that containers can write into (emptyDir and hostPath
// volumes) or that are named by manifest fields: everything is relative to a directory
// fd, symlinks are never followed, mounts are never crossed, and nothing recurses over a
// depth that a container chose. Resolution inside a tree goes through
// berth::open_in_root (openat2 RESOLVE_IN_ROOT, common/openat2.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fd.hpp"

namespace berth::agent {

// The mount ID of what fd refers to (statx STATX_MNT_ID; st_dev on kernels before 5.8).
uint64_t mount_id(int fd);

// Opens `rel` (relative, no "..": callers validate) below dir_fd with no symlink anywhere
// in it (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS). An invalid fd and errno on failure.
UniqueFd open_beneath(int dir_fd, const std::string& rel, int flags);

// Opens the directory `rel` below dir_fd, making the missing components with mkdirat
// (mode) one at a time, each reopened without following symlinks: a symlink planted
// anywhere on the way fails the call (ELOOP) instead of being followed. The last
// component may be a non-directory when it exists (final_any). Returns an O_PATH fd.
// Throws berth::Error naming the component that failed.
UniqueFd open_or_make_beneath(int dir_fd, const std::string& rel, mode_t mode, bool final_any);

// Removes the entry `name` of dir_fd and, for a directory, everything below it, without
// following a symlink, without recursion (a directory's children are moved up into it
// and removed from there, so a tree of any depth needs two fds) and without crossing
// into a mount: a mount point anywhere in the tree fails the call (EBUSY) before
// anything below it is touched. ENOENT is not an error.
void remove_tree_beneath(int dir_fd, const std::string& name);

// Mount points at or below the directory dir_fd (from /proc/self/mountinfo), deepest first,
// as paths relative to it ("" for dir_fd's own directory).
std::vector<std::string> mounts_beneath(int dir_fd);

// Unmounts (MNT_DETACH) every mount at or below `rel` of dir_fd, stacked ones included,
// opening each through open_beneath. Throws when one cannot be unmounted.
void unmount_beneath(int dir_fd, const std::string& rel);

} // namespace berth::agent
