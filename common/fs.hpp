// Small file and string helpers shared by every layer.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth {

std::string read_file(const std::string& path);
// Reads a file relative to a directory fd.
std::string read_file_at(int dirfd, const std::string& path);
// Returns nullopt when the file does not exist.
std::optional<std::string> try_read_file(const std::string& path);
// Opens with O_WRONLY|O_TRUNC (O_CREAT when create is set) and writes all of data.
void write_file(const std::string& path, std::string_view data, bool create = true, mode_t mode = 0644);
// Writes dir/.name.tmp, renames it onto dir/name. With durable, fsyncs before the
// rename (for data that must survive a crash; runtime state under /run need not).
void write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644, bool durable = true);
void mkdir_p(const std::string& path, mode_t mode = 0755);
bool path_exists(const std::string& path);

// Writes all bytes, retrying on EINTR and short writes.
void write_all(int fd, std::string_view data);

std::vector<std::string> split(std::string_view s, char sep, bool skip_empty = true);
std::string_view trim(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
// Parses a whole string as an integer; nullopt on any junk or overflow.
std::optional<int64_t> parse_int(std::string_view s, int base = 10);
std::optional<uint64_t> parse_uint(std::string_view s, int base = 10);
// A value as an error message may show it: in double quotes, quotes and backslashes
// escaped, bytes outside printable ASCII as \xNN, at most `max` bytes then "...". For
// untrusted input, which must never make a message unbounded or unprintable.
std::string quoted_value(std::string_view s, size_t max = 96);
// Joins a and b with exactly one '/'.
std::string path_join(std::string_view a, std::string_view b);

} // namespace berth
