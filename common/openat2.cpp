#include "common/openat2.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace berth {

UniqueFd open_in_root(int root_fd, const std::string& path, int flags, uint64_t resolve_extra) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve_extra;
  const char* p = path.empty() ? "." : path.c_str();
  long fd;
  do fd = ::syscall(SYS_openat2, root_fd, p, &how, sizeof how);
  while (fd < 0 && (errno == EAGAIN || errno == EINTR));
  return UniqueFd(static_cast<int>(fd));
}

} // namespace berth
