#include "agent/lib/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "common/log.hpp"

namespace berth::agent {
namespace {
std::atomic<bool> debug_on{false};
std::mutex write_mu;
} // namespace

void set_log_debug(bool on) { debug_on = on; }
bool log_debug_enabled() { return debug_on; }

void log_line(LogLevel level, std::string_view msg) {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  static const char* names[] = {"debug", "info", "warning", "error"};
  static const char* prio[] = {"<7>", "<6>", "<4>", "<3>"};
  int i = static_cast<int>(level);
  std::string line = journal ? fmt::format("{}{}\n", prio[i], msg)
                             : fmt::format("{} {} {}\n", berth::log::rfc3339_now(), names[i], msg);
  std::lock_guard lock(write_mu);
  ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  (void)n;
}

} // namespace berth::agent
