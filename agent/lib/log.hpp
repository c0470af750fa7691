// berthlet's log, in the daemons' one line format (common/daemon_log.hpp): logfmt on
// stderr, one write per line, so pod workers never interleave. common/log.hpp serves
// the short-lived CLI tools (it holds lines back until exit).
#pragma once

#include <string_view>

#include <fmt/format.h>

#include "common/log.hpp"

namespace berth::agent {

using LogLevel = berth::log::Level;  // debug, info, warning, error
void log_line(LogLevel level, std::string_view msg);
bool log_debug_enabled();

template <typename... A>
void log_info(fmt::format_string<A...> f, A&&... a) {
  log_line(LogLevel::info, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void log_warn(fmt::format_string<A...> f, A&&... a) {
  log_line(LogLevel::warning, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void log_error(fmt::format_string<A...> f, A&&... a) {
  log_line(LogLevel::error, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void log_debug(fmt::format_string<A...> f, A&&... a) {
  if (log_debug_enabled()) log_line(LogLevel::debug, fmt::format(f, std::forward<A>(a)...));
}

} // namespace berth::agent
