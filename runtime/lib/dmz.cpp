#include "runtime/lib/dmz.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

#include "common/error.hpp"
#include "common/fs.hpp"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace berth {

extern const uint8_t dmz_image[];
extern const size_t dmz_image_size;

UniqueFd create_dmz_fd() {
  int fd = ::memfd_create("berth-dmz", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) fd = ::memfd_create("berth-dmz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail_errno("memfd_create for berth-dmz");
  UniqueFd out(fd);
  write_all(fd, std::string_view(reinterpret_cast<const char*>(dmz_image), dmz_image_size));
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
    fail_errno("seal berth-dmz memfd");
  return out;
}

void exec_via_dmz(int dmz_fd, const std::string& path, const std::vector<std::string>& args,
                  const std::vector<std::string>& env, int wait_fd) {
  char wait_arg[16];
  ::snprintf(wait_arg, sizeof wait_arg, "#%d", wait_fd);
  std::vector<char*> argv;
  argv.reserve(args.size() + 3);
  if (wait_fd >= 0) argv.push_back(wait_arg);
  argv.push_back(const_cast<char*>(path.c_str()));
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::syscall(SYS_execveat, dmz_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
}

} // namespace berth
