// The CRI container log: "<timestamp> <stdout|stderr> <P|F> <message>\n" records.
//
// A LineSplitter per stream turns the container's bytes into records: a line ends
// at "\n" (a "\r" right before it is dropped, as containerd's bufio.ReadLine does),
// a line longer than the limit leaves in partial (P) records of exactly `limit`
// bytes, and bytes still unterminated at end of stream leave as a P record. Records
// point into the read buffer (no copy) and leave in one writev per read; only the
// unfinished tail of a line is copied into the splitter's buffer.
#pragma once

#include <sys/uio.h>
#include <time.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "shim/lib/exit_status.hpp"

namespace berth::shim {

enum class Stream { out, err };
inline std::string_view stream_name(Stream s) { return s == Stream::out ? "stdout" : "stderr"; }

// The log file, opened O_APPEND. Write errors (a full disk, an I/O error) never stop
// the shim: the records are dropped and counted, and writing resumes with the next.
class LogFile {
public:
  explicit LogFile(std::string path); // throws when the file cannot be opened
  // Opens the path again (after the caller renamed the file for rotation). On failure
  // throws and keeps writing to the old file.
  void reopen();
  // Writes whole records; may modify iov.
  void write(struct iovec* iov, int count, size_t bytes);

  const std::string& path() const { return path_; }
  uint64_t dropped_bytes() const { return dropped_bytes_; }
  int last_error() const { return last_error_; }

private:
  std::string path_;
  UniqueFd fd_;
  uint64_t dropped_bytes_ = 0;
  int last_error_ = 0;
};

// Collects the records of one read (one timestamp) and writes them with writev.
class RecordWriter {
public:
  explicit RecordWriter(LogFile& file) : file_(file) {}
  void begin(Stream stream, const struct timespec& now);
  // One record: the message is the concatenation of the parts.
  void add(char tag, std::string_view a, std::string_view b = {}, std::string_view c = {});
  void flush();

private:
  static constexpr int kMaxIov = 1020; // below IOV_MAX (1024)
  LogFile& file_;
  char prefix_[kTimestampLen + 9] = {}; // "<timestamp> stdout "
  size_t prefix_len_ = 0;
  std::array<struct iovec, kMaxIov> iov_;
  int count_ = 0;
  size_t bytes_ = 0;
};

class LineSplitter {
public:
  LineSplitter(Stream stream, size_t max_line);
  void feed(std::string_view data, RecordWriter& out);
  // End of stream: what is left leaves as partial records.
  void finish(RecordWriter& out);
  Stream stream() const { return stream_; }

private:
  struct Line; // the current line as up to three pieces (see cri_log.cpp)
  void emit_overflow(Line& line, RecordWriter& out);
  void keep(const Line& line);

  Stream stream_;
  size_t max_;
  std::unique_ptr<char[]> buf_; // the unfinished line, at most max_ bytes; pages touched on use
  size_t len_ = 0;
  bool held_cr_ = false; // a "\r" that ended the last read: dropped if "\n" follows
};

} // namespace berth::shim
