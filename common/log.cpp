#include "common/log.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include <nlohmann/json.hpp>

namespace berth::log {
namespace {

struct State {
  Options opts;
  std::vector<std::string> held; // formatted lines waiting for finish()
  bool finished = false;
  Sink sink = nullptr;
};

State& state() {
  static State s;
  return s;
}

const char* level_name(Level l) {
  switch (l) {
  case Level::debug: return "debug";
  case Level::info: return "info";
  case Level::warning: return "warning";
  case Level::error: return "error";
  }
  return "info";
}

std::string format_line(Level level, std::string_view msg) {
  auto& s = state();
  if (s.opts.format == Format::json) {
    nlohmann::json j = {{"level", level_name(level)}, {"msg", msg}, {"time", rfc3339_now()}};
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  nlohmann::json quoted = msg;
  return fmt::format("time=\"{}\" level={} msg={}\n", rfc3339_now(), level_name(level),
                     quoted.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void append_to_file(const std::string& data) {
  auto& s = state();
  if (s.opts.path.empty() || data.empty()) return;
  int fd = ::open(s.opts.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t n = ::write(fd, data.data(), data.size());
  (void)n;
  ::close(fd);
}

} // namespace

void configure(const Options& opts) {
  state().opts = opts;
  // runc creates --log at start-up; clients may look for the file even when it stays empty.
  if (!opts.path.empty()) {
    int fd = ::open(opts.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
  }
}

bool debug_enabled() { return state().opts.debug; }

std::string rfc3339_now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

void set_sink(Sink sink) { state().sink = sink; }

void write(Level level, std::string_view msg) {
  auto& s = state();
  if (s.sink) return s.sink(level, msg);
  if (level == Level::debug && !s.opts.debug) return;
  if (level == Level::warning && !s.opts.quiet_stderr && s.opts.path.empty()) {
    std::string line = fmt::format("berth: warning: {}\n", msg);
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    (void)n;
  }
  if (s.opts.path.empty()) {
    if (level == Level::debug) {
      std::string line = fmt::format("berth: debug: {}\n", msg);
      ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
      (void)n;
    }
    return;
  }
  if (s.finished) {
    append_to_file(format_line(level, msg));
    return;
  }
  s.held.push_back(format_line(level, msg));
}

void finish(std::string_view error_msg) {
  auto& s = state();
  if (s.finished) return;
  s.finished = true;
  if (!error_msg.empty()) {
    // On failure the log holds the error alone: podman parses the whole file as one
    // JSON object. The warnings go to stderr after the error text instead.
    append_to_file(format_line(Level::error, error_msg));
    for (auto& l : s.held) {
      std::string line = "berth: " + l;
      ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
      (void)n;
    }
  } else {
    std::string out;
    for (auto& l : s.held) out += l;
    append_to_file(out);
  }
  s.held.clear();
}

} // namespace berth::log
