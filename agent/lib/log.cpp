#include "agent/lib/log.hpp"

#include "common/daemon_log.hpp"

namespace berth::agent {

// berthlet writes berthd's line format (common/daemon_log): one parser for both daemons.
bool log_debug_enabled() { return dlog::enabled(dlog::Level::debug); }

void log_line(LogLevel level, std::string_view msg) {
  static constexpr dlog::Level levels[] = {dlog::Level::debug, dlog::Level::info, dlog::Level::warn,
                                           dlog::Level::error};
  dlog::write(levels[static_cast<int>(level)], msg);
}

} // namespace berth::agent
