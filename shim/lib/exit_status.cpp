#include "shim/lib/exit_status.hpp"

#include <sys/wait.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::shim {

ExitStatus ExitStatus::from_wait_status(int wait_status, const struct timespec& when) {
  ExitStatus s;
  if (WIFSIGNALED(wait_status)) {
    s.signal = WTERMSIG(wait_status);
    s.exit_code = 128 + s.signal;
  } else {
    s.exit_code = WEXITSTATUS(wait_status);
  }
  char ts[kTimestampLen + 1];
  format_timestamp(when, ts);
  s.exited_at = ts;
  return s;
}

std::string ExitStatus::to_json() const {
  return fmt::format(R"({{"exit_code":{},"signal":{},"oom_killed":{},"exited_at":"{}"}})", exit_code, signal,
                     oom_killed ? "true" : "false", exited_at);
}

std::optional<ExitStatus> ExitStatus::parse(std::string_view text) {
  try {
    json j = json::parse(text);
    JsonView v(j, "exit file");
    ExitStatus s;
    s.exit_code = v["exit_code"].as_i32();
    s.signal = v["signal"].as_i32();
    s.oom_killed = v["oom_killed"].as_bool();
    s.exited_at = v["exited_at"].as_string();
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void format_timestamp(const struct timespec& ts, char (&out)[kTimestampLen + 1]) {
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  // snprintf would pull in locale machinery for nothing; the fields are fixed width.
  auto put = [&](size_t at, long value, int width) {
    for (int i = width - 1; i >= 0; i--) {
      out[at + static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, tm.tm_year + 1900, 4);
  out[4] = '-';
  put(5, tm.tm_mon + 1, 2);
  out[7] = '-';
  put(8, tm.tm_mday, 2);
  out[10] = 'T';
  put(11, tm.tm_hour, 2);
  out[13] = ':';
  put(14, tm.tm_min, 2);
  out[16] = ':';
  put(17, tm.tm_sec, 2);
  out[19] = '.';
  put(20, ts.tv_nsec, 9);
  out[29] = 'Z';
  out[30] = '\0';
}

std::string timestamp_now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char out[kTimestampLen + 1];
  format_timestamp(ts, out);
  return out;
}

void write_exit_file(const std::string& path, const ExitStatus& status) {
  // Not fsync'ed: exit files live on tmpfs (/run) and mean nothing after a reboot.
  write_file_atomic(path, status.to_json() + "\n", 0644, false);
}

std::optional<ExitStatus> read_exit_file(const std::string& path) {
  auto text = try_read_file(path);
  if (!text) return std::nullopt;
  auto s = ExitStatus::parse(*text);
  if (!s) fail("{}: not an exit file", path);
  return s;
}

} // namespace berth::shim
