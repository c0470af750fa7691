// A container's (or exec process's) end: exit code or signal, time, OOM, and the
// exit file that records it for callers that come later.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <optional>
#include <string>
#include <string_view>

namespace berth::shim {

struct ExitStatus {
  int exit_code = 0;     // the process's code, or 128 + signal when a signal killed it
  int signal = 0;        // the killing signal, 0 when the process exited
  bool oom_killed = false;
  std::string exited_at; // RFC 3339, UTC, 9 fractional digits

  static ExitStatus from_wait_status(int wait_status, const struct timespec& when);
  // {"exit_code":..,"signal":..,"oom_killed":..,"exited_at":".."}
  std::string to_json() const;
  // Accepts what to_json writes; nullopt on anything else.
  static std::optional<ExitStatus> parse(std::string_view json);
};

// RFC 3339 in UTC with exactly 9 fractional digits: "2026-11-26T15:53:17.000012345Z".
// Fixed width (unlike Go's trimmed RFC3339Nano) so that log lines sort as text, and
// UTC so that no time zone file is read. Writes 30 bytes plus a NUL into out.
inline constexpr size_t kTimestampLen = 30;
void format_timestamp(const struct timespec& ts, char (&out)[kTimestampLen + 1]);
std::string timestamp_now();

// Writes <exit_dir>/<id> atomically (temp file + rename, so that a watcher of the
// directory never reads half a file).
void write_exit_file(const std::string& path, const ExitStatus& status);
std::optional<ExitStatus> read_exit_file(const std::string& path);

} // namespace berth::shim
