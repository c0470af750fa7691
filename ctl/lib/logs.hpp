// The CRI container log format, as the kubelet writes and reads it
// (k8s.io/cri-api/pkg/apis/runtime/v1: "<RFC3339Nano time> <stream> <P|F> <message>"):
// one line per chunk, P marking a partial line that the next chunks of the same stream
// complete. Pure parsing, for logs.cpp and its unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::ctl {

struct LogLine {
  int64_t time = 0;  // unix nanoseconds
  std::string stream;  // "stdout" or "stderr"
  bool partial = false;
  std::string_view message;  // points into the parsed line, without the newline
  std::string_view timestamp;  // the time as written
};

// One line of a CRI log file (without its '\n'); nullopt for a malformed line.
std::optional<LogLine> parse_log_line(std::string_view line);
// RFC 3339 (fraction optional, "Z" or a ±hh:mm offset) to unix nanoseconds.
std::optional<int64_t> parse_rfc3339(std::string_view s);
// --since: an RFC 3339 time, or a duration before `now_nanos` ("90s", "5m", "2h", "1h30m").
int64_t parse_since(const std::string& s, int64_t now_nanos);

} // namespace berth::ctl
