// openat2(2) resolution confined to a directory fd, shared by the image unpacker, berthd's
// pod files and berthlet's volumes.
#pragma once

#include <cstdint>
#include <string>

#include "common/fd.hpp"

namespace berth {

// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve_extra): `path` resolved with
// root_fd as "/", symlinks included, so nothing it names can be outside root_fd (add
// RESOLVE_NO_SYMLINKS to refuse symlinks altogether). O_CLOEXEC is always set; EAGAIN
// (a concurrent rename) and EINTR are retried. Returns an invalid fd with errno set.
UniqueFd open_in_root(int root_fd, const std::string& path, int flags, uint64_t resolve_extra = 0);

} // namespace berth
