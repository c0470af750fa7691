#include "common/daemon_log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common/log.hpp"

namespace berth::dlog {
namespace {

std::atomic<Level> g_threshold{Level::info};
std::atomic<Format> g_format{Format::text};

const char* level_name(Level l) {
  switch (l) {
  case Level::debug: return "debug";
  case Level::info: return "info";
  case Level::warn: return "warning";
  case Level::error: return "error";
  }
  return "info";
}

// logfmt values: bare when they are simple, JSON-quoted otherwise.
void append_logfmt_value(std::string& out, std::string_view v) {
  bool bare = !v.empty();
  for (char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) >= 0x7f) {
      bare = false;
      break;
    }
  if (bare) {
    out += v;
    return;
  }
  out += nlohmann::json(std::string(v)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// sd-daemon(3): JOURNAL_STREAM names the journal's stream as "dev:inode"; it is ours only
// while stderr is that stream (a child that redirected stderr to a file inherits the
// variable, and must not prefix priorities into the file).
bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  if (!env || std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

} // namespace

void configure(Level threshold, Format format) {
  g_threshold = threshold;
  g_format = format;
}

Format format() { return g_format.load(std::memory_order_relaxed); }

void route_common_log() {
  log::Options opts;
  opts.debug = enabled(Level::debug);
  log::configure(opts);
  log::set_sink([](log::Level level, std::string_view msg) {
    static constexpr Level levels[] = {Level::debug, Level::info, Level::warn, Level::error};
    write(levels[static_cast<int>(level)], msg);
  });
}

bool enabled(Level level) { return level >= g_threshold.load(std::memory_order_relaxed); }

void write(Level level, std::string_view msg, Fields fields) {
  if (!enabled(level)) return;
  std::string line;
  if (g_format == Format::json) {
    nlohmann::ordered_json j;
    j["time"] = log::rfc3339_now();
    j["level"] = level_name(level);
    j["msg"] = msg;
    for (auto& [k, v] : fields) j[std::string(k)] = v;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = "time=\"" + log::rfc3339_now() + "\" level=" + level_name(level) + " msg=";
    append_logfmt_value(line, msg);
    for (auto& [k, v] : fields) {
      line += ' ';
      line += k;
      line += '=';
      append_logfmt_value(line, v);
    }
  }
  line += '\n';
  // Under systemd the sd-daemon(3) prefix gives journald the line's priority.
  static const bool journal = stderr_is_journal();
  if (journal) {
    static const char* prio[] = {"<7>", "<6>", "<4>", "<3>"};
    line.insert(0, prio[static_cast<int>(level)]);
  }
  ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  (void)n;
}

std::optional<Level> parse_level(std::string_view s) {
  if (s == "debug") return Level::debug;
  if (s == "info") return Level::info;
  if (s == "warn" || s == "warning") return Level::warn;
  if (s == "error") return Level::error;
  return std::nullopt;
}

std::optional<Format> parse_format(std::string_view s) {
  if (s == "text") return Format::text;
  if (s == "json") return Format::json;
  return std::nullopt;
}

} // namespace berth::dlog
