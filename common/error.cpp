#include "common/error.hpp"

#include <cstring>

namespace berth {

void Error::render() {
  if (errno_ == 0) {
    full_ = msg_;
    return;
  }
  // Lower-case strerror text matches what runc prints ("no such file or directory"),
  // which podman and containerd match on.
  std::string text = std::strerror(errno_);
  if (!text.empty())
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  full_ = msg_ + ": " + text;
}

} // namespace berth
