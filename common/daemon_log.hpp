// The daemons' log (berthd, berthlet): one structured line per event on stderr
// (journald keeps it under systemd, with the level as the line's priority), with a
// level threshold. Text form is logfmt, as containerd writes it:
//   time="2026-11-26T18:00:00.123456789Z" level=info msg="image pulled" image=docker.io/library/busybox:latest
// JSON form is one object per line: {"time":...,"level":...,"msg":...,"image":...}.
// Lines are written with one write(2) each, so threads never interleave within a line.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace berth::dlog {

enum class Level { debug, info, warn, error };
enum class Format { text, json };

using Field = std::pair<std::string_view, std::string_view>;
using Fields = std::initializer_list<Field>;

void configure(Level threshold, Format format);
Format format();
// Sends what the libraries log through common/log (the short-lived tools' log) into
// this one, at the same levels and threshold. Call after configure().
void route_common_log();
bool enabled(Level level);
void write(Level level, std::string_view msg, Fields fields = {});

inline void debug(std::string_view msg, Fields f = {}) { if (enabled(Level::debug)) write(Level::debug, msg, f); }
inline void info(std::string_view msg, Fields f = {}) { write(Level::info, msg, f); }
inline void warn(std::string_view msg, Fields f = {}) { write(Level::warn, msg, f); }
inline void error(std::string_view msg, Fields f = {}) { write(Level::error, msg, f); }

std::optional<Level> parse_level(std::string_view s);   // debug, info, warn|warning, error
std::optional<Format> parse_format(std::string_view s); // text, json

} // namespace berth::dlog
