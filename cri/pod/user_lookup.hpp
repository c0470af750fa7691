// Users and groups of a container's root file system, for run_as_username and image
// USER values: /etc/passwd and /etc/group read inside the rootfs (openat2
// RESOLVE_IN_ROOT, so an image's symlinks cannot point the lookup at the host's files),
// at most 1 MiB each, as runc's libcontainer/user resolves them.
#pragma once

#include <string>
#include <string_view>

#include "cri/pod/oci_spec.hpp"

namespace berth::cri {

// "name", "uid", "uid:gid", "name:group", "uid:group". A numeric uid needs no entry (its
// gid is then the passwd entry's, or 0); a name without an entry is an error naming it
// (EINVAL). additional_gids: groups whose member list names the user.
ResolvedUser lookup_user(std::string_view passwd, std::string_view group, const std::string& user);

// A resolver reading the files inside `rootfs` for each call (absent files are empty).
UserResolver rootfs_user_resolver(const std::string& rootfs);

} // namespace berth::cri
