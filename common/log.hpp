// Process-wide logging for Berth's command-line tools.
//
// Messages go to stderr and, with --log, to a file in text or JSON-lines form
// ({"level","msg","time"}, RFC 3339), as runc does. Warnings and debug lines are
// held back until exit: on failure the log file holds only the error, since podman
// parses its oci-log as a single JSON object.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace berth::log {

enum class Level { debug, info, warning, error };
enum class Format { text, json };

struct Options {
  std::string path;          // empty: no log file
  Format format = Format::text;
  bool debug = false;
  bool quiet_stderr = false; // do not echo warnings to stderr
};

void configure(const Options& opts);
void write(Level level, std::string_view msg);
// Writes the held-back lines to the log file; with an error, the file gets only the
// error line and the held-back lines go to stderr.
void finish(std::string_view error_msg = {});
bool debug_enabled();

// A daemon routes the messages of the libraries it links (which log through here) into
// its own structured, thread-safe log. With a sink set, every message goes to it and
// nothing above (held lines, --log file, "berth:" lines on stderr) applies.
using Sink = void (*)(Level level, std::string_view msg);
void set_sink(Sink sink);

template <typename... A>
void debug(fmt::format_string<A...> f, A&&... a) {
  if (debug_enabled()) write(Level::debug, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void info(fmt::format_string<A...> f, A&&... a) {
  write(Level::info, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void warn(fmt::format_string<A...> f, A&&... a) {
  write(Level::warning, fmt::format(f, std::forward<A>(a)...));
}

// RFC 3339 UTC timestamp with nanoseconds, e.g. 2026-11-26T15:53:17.123456789Z.
std::string rfc3339_now();

} // namespace berth::log
