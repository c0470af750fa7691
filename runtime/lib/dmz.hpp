// The sealed trampoline the container init executes instead of exec'ing the
// user's program directly (see runtime/dmz/dmz.c for why).
#pragma once

#include <string>
#include <vector>

#include "common/fd.hpp"

namespace berth {

// A sealed, close-on-exec memfd holding berth-dmz.
UniqueFd create_dmz_fd();
// execveat(dmz) with argv = [path, args...]. With wait_fd >= 0, berth-dmz first waits
// for one byte on that fd (the exec fifo) and closes it. Returns only on failure.
void exec_via_dmz(int dmz_fd, const std::string& path, const std::vector<std::string>& args,
                  const std::vector<std::string>& env, int wait_fd = -1);

} // namespace berth
