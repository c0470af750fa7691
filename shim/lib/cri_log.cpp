#include "shim/lib/cri_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/error.hpp"

namespace berth::shim {

// ---- LogFile ----------------------------------------------------------------

namespace {
UniqueFd open_log(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640));
  if (!fd) fail_errno("open log {}", path);
  return fd;
}
} // namespace

LogFile::LogFile(std::string path) : path_(std::move(path)), fd_(open_log(path_)) {}

void LogFile::reopen() {
  // Every record read so far is already in the old file (writes are synchronous), and
  // bytes not yet read wait in the pipe: the swap loses nothing.
  fd_ = open_log(path_);
}

namespace {
// Advances past `n` written bytes.
void skip_bytes(struct iovec*& iov, int& count, size_t n) {
  while (count > 0 && n >= iov->iov_len) {
    n -= iov->iov_len;
    iov++;
    count--;
  }
  if (count > 0 && n > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + n;
    iov->iov_len -= n;
  }
}

// Bytes up to the end of the last whole record within the first n bytes (a record ends
// with its own one-byte "\n" iovec: messages never hold a newline).
size_t whole_records(const struct iovec* iov, int count, size_t n) {
  size_t pos = 0, complete = 0;
  for (int i = 0; i < count && pos < n; i++) {
    pos += iov[i].iov_len;
    if (pos <= n && iov[i].iov_len == 1 && *static_cast<const char*>(iov[i].iov_base) == '\n') complete = pos;
  }
  return complete;
}
} // namespace

void LogFile::write(struct iovec* iov, int count, size_t bytes) {
  // A full disk (or quota) cuts a write short: the torn record is cut off again, so
  // the file only ever holds whole records, and the rest is tried once more; what
  // still does not fit is dropped and counted. The container is never held up.
  for (int attempt = 0; attempt < 2 && bytes > 0; attempt++) {
    ssize_t n;
    while ((n = ::writev(fd_.get(), iov, count)) < 0 && errno == EINTR) {}
    if (n < 0) {
      last_error_ = errno;
      break;
    }
    auto written = static_cast<size_t>(n);
    if (written == bytes) return;
    size_t keep = whole_records(iov, count, written);
    if (keep < written) {
      off_t end = ::lseek(fd_.get(), 0, SEEK_END);
      if (end < 0 || ::ftruncate(fd_.get(), end - static_cast<off_t>(written - keep)) < 0) keep = written;
    }
    last_error_ = ENOSPC;
    skip_bytes(iov, count, keep);
    bytes -= keep;
  }
  dropped_bytes_ += bytes;
}

// ---- RecordWriter -----------------------------------------------------------

void RecordWriter::begin(Stream stream, const struct timespec& now) {
  char ts[kTimestampLen + 1];
  format_timestamp(now, ts);
  std::memcpy(prefix_, ts, kTimestampLen);
  prefix_[kTimestampLen] = ' ';
  auto name = stream_name(stream);
  std::memcpy(prefix_ + kTimestampLen + 1, name.data(), name.size());
  prefix_[kTimestampLen + 1 + name.size()] = ' ';
  prefix_len_ = kTimestampLen + 2 + name.size();
}

void RecordWriter::add(char tag, std::string_view a, std::string_view b, std::string_view c) {
  static const char kFull[] = "F ", kPartial[] = "P ", kNewline[] = "\n";
  if (count_ + 6 > kMaxIov) flush();
  auto push = [&](const void* p, size_t n) {
    if (n == 0) return;
    iov_[count_++] = {const_cast<void*>(p), n};
    bytes_ += n;
  };
  push(prefix_, prefix_len_);
  push(tag == 'F' ? kFull : kPartial, 2);
  push(a.data(), a.size());
  push(b.data(), b.size());
  push(c.data(), c.size());
  push(kNewline, 1);
}

void RecordWriter::flush() {
  if (count_ > 0) file_.write(iov_.data(), count_, bytes_);
  count_ = 0;
  bytes_ = 0;
}

// ---- LineSplitter -----------------------------------------------------------

namespace {
const char kCr[] = "\r";
} // namespace

// The line being assembled: [kept bytes from earlier reads][held "\r"][new bytes].
struct LineSplitter::Line {
  std::string_view part[3];

  size_t size() const { return part[0].size() + part[1].size() + part[2].size(); }
  // Removes and returns the first n bytes as up to three pieces.
  Line take(size_t n) {
    Line front;
    for (int i = 0; i < 3; i++) {
      size_t k = std::min(n, part[i].size());
      front.part[i] = part[i].substr(0, k);
      part[i].remove_prefix(k);
      n -= k;
    }
    return front;
  }
  void drop_last_byte() {
    for (int i = 2; i >= 0; i--) {
      if (!part[i].empty()) {
        part[i].remove_suffix(1);
        return;
      }
    }
  }
  char last_byte() const {
    for (int i = 2; i >= 0; i--)
      if (!part[i].empty()) return part[i].back();
    return 0;
  }
};

LineSplitter::LineSplitter(Stream stream, size_t max_line)
    : stream_(stream), max_(max_line), buf_(new char[max_line]) {}

void LineSplitter::emit_overflow(Line& line, RecordWriter& out) {
  while (line.size() > max_) {
    Line chunk = line.take(max_);
    out.add('P', chunk.part[0], chunk.part[1], chunk.part[2]);
  }
}

void LineSplitter::keep(const Line& line) {
  // The pieces may point into buf_ itself: move that part first, then append.
  size_t n = 0;
  if (!line.part[0].empty()) {
    std::memmove(buf_.get(), line.part[0].data(), line.part[0].size());
    n = line.part[0].size();
  }
  for (int i = 1; i < 3; i++) {
    std::memcpy(buf_.get() + n, line.part[i].data(), line.part[i].size());
    n += line.part[i].size();
  }
  len_ = n;
}

void LineSplitter::feed(std::string_view data, RecordWriter& out) {
  Line line;
  line.part[0] = {buf_.get(), len_};
  if (held_cr_) line.part[1] = {kCr, 1};
  held_cr_ = false;
  // Records written from here on may point into buf_: it is only rewritten (keep)
  // after the flush at the end.
  while (!data.empty()) {
    const void* nl = std::memchr(data.data(), '\n', data.size());
    if (!nl) break;
    size_t at = static_cast<size_t>(static_cast<const char*>(nl) - data.data());
    line.part[2] = data.substr(0, at);
    data.remove_prefix(at + 1);
    if (line.last_byte() == '\r') line.drop_last_byte();
    emit_overflow(line, out);
    out.add('F', line.part[0], line.part[1], line.part[2]);
    line = Line{};
  }
  line.part[2] = data;
  // A "\r" at the very end may be the first half of "\r\n": decide with the next read.
  if (line.last_byte() == '\r') {
    line.drop_last_byte();
    held_cr_ = true;
  }
  emit_overflow(line, out);
  out.flush();
  keep(line);
}

void LineSplitter::finish(RecordWriter& out) {
  Line line;
  line.part[0] = {buf_.get(), len_};
  if (held_cr_) line.part[1] = {kCr, 1};
  held_cr_ = false;
  emit_overflow(line, out);
  if (line.size() > 0) out.add('P', line.part[0], line.part[1], line.part[2]);
  out.flush();
  len_ = 0;
}

} // namespace berth::shim
