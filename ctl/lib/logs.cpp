// logs: reads the log file that ContainerStatus names, as crictl and the kubelet do
// (the runtime never serves logs over CRI), joins partial lines, and with -f follows the
// file across rotation (renamed away, a new one created at the same path).
#include "ctl/lib/logs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "ctl/lib/verbs.hpp"

namespace berth::ctl {
namespace {

// A joined line longer than this is written out in pieces: the file is not ours to trust.
constexpr size_t kMaxJoined = 1 << 20;

struct Printer {
  Printer(const LogsOptions& opts, int64_t since_nanos) : o(opts), since(since_nanos) {}
  const LogsOptions& o;
  int64_t since;
  std::string pending[2];  // partial lines, per stream
  int64_t pending_time[2] = {0, 0};
  std::string ts_copy[2];
  std::deque<std::pair<int, std::string>>* tail_buffer = nullptr;  // for --tail: (fd, text)

  void emit(int fd, int64_t t, std::string_view ts, std::string_view msg) {
    if (t < since) return;
    std::string out;
    if (o.timestamps) out.append(ts).push_back(' ');
    out.append(msg).push_back('\n');
    if (tail_buffer) {
      tail_buffer->emplace_back(fd, std::move(out));
      if (o.tail >= 0 && tail_buffer->size() > static_cast<size_t>(o.tail)) tail_buffer->pop_front();
      return;
    }
    write_all(fd, out);
  }
  static void write_all(int fd, std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::write(fd, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(fmt::format("write output: {}", std::strerror(errno)));
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  void line(std::string_view raw) {
    auto l = parse_log_line(raw);
    if (!l) return;  // a torn or foreign line: skipped, as the kubelet does
    int i = l->stream == "stderr" ? 1 : 0;
    int fd = i ? STDERR_FILENO : STDOUT_FILENO;
    if (pending[i].empty()) {
      pending_time[i] = l->time;
      ts_copy[i] = std::string(l->timestamp);
    }
    if (l->partial && pending[i].size() + l->message.size() < kMaxJoined) {
      pending[i].append(l->message);
      return;
    }
    pending[i].append(l->message);
    emit(fd, pending_time[i], ts_copy[i], pending[i]);
    pending[i].clear();
  }
};

// Feeds every complete line read from fd to p; keeps an unterminated tail in `carry`.
void drain(int fd, std::string& carry, Printer& p) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("read log: {}", std::strerror(errno)));
    if (n == 0) return;
    carry.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = carry.find('\n', start)) != std::string::npos; start = nl + 1)
      p.line(std::string_view(carry).substr(start, nl - start));
    carry.erase(0, start);
    if (carry.size() > kMaxJoined) carry.clear();  // no newline in a megabyte: not a CRI log
  }
}

bool running(Client& c, const std::string& id) {
  cri::ContainerStatusRequest req;
  req.set_container_id(id);
  cri::ContainerStatusResponse resp;
  BERTHCTL_CALL(c, runtime, ContainerStatus, req, resp);
  return resp.status().state() == cri::CONTAINER_RUNNING;
}

int64_t now_nanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

std::optional<int64_t> parse_rfc3339(std::string_view s) {
  struct tm tm {};
  if (s.size() < 20) return std::nullopt;
  std::string head(s.substr(0, 19));
  const char* end = strptime(head.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end || *end) return std::nullopt;
  size_t i = 19;
  int64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    int digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits)
      if (digits < 9) frac = frac * 10 + (s[i] - '0');
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) frac *= 10;
  }
  int64_t offset = 0;
  if (i < s.size() && s[i] == 'Z') {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int h = (s[i + 1] - '0') * 10 + (s[i + 2] - '0'), m = (s[i + 4] - '0') * 10 + (s[i + 5] - '0');
    offset = (h * 3600 + m * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return (static_cast<int64_t>(timegm(&tm)) - offset) * 1000000000 + frac;
}

std::optional<LogLine> parse_log_line(std::string_view line) {
  LogLine l;
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  l.timestamp = line.substr(0, sp1);
  auto t = parse_rfc3339(l.timestamp);
  if (!t) return std::nullopt;
  l.time = *t;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  l.stream = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  if (l.stream != "stdout" && l.stream != "stderr") return std::nullopt;
  // The tag field: "P" or "F", possibly followed by more ':'-separated tags.
  auto sp3 = line.find(' ', sp2 + 1);
  std::string_view tag = line.substr(sp2 + 1, sp3 == std::string_view::npos ? std::string_view::npos : sp3 - sp2 - 1);
  if (tag.empty()) return std::nullopt;
  l.partial = tag[0] == 'P';
  l.message = sp3 == std::string_view::npos ? std::string_view{} : line.substr(sp3 + 1);
  return l;
}

int64_t parse_since(const std::string& s, int64_t now) {
  if (auto t = parse_rfc3339(s)) return *t;
  // A Go-style duration: numbers with units h, m, s (ms too).
  int64_t total = 0;
  size_t i = 0;
  if (s.empty()) throw std::invalid_argument("--since: empty");
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) throw std::invalid_argument(fmt::format("--since {:?}: an RFC 3339 time or a duration like 10s, 5m, 1h", s));
    double v = std::stod(s.substr(start, i - start));
    double unit;
    if (s.compare(i, 2, "ms") == 0) { unit = 1e6; i += 2; }
    else if (i < s.size() && s[i] == 's') { unit = 1e9; ++i; }
    else if (i < s.size() && s[i] == 'm') { unit = 60e9; ++i; }
    else if (i < s.size() && s[i] == 'h') { unit = 3600e9; ++i; }
    else throw std::invalid_argument(fmt::format("--since {:?}: an RFC 3339 time or a duration like 10s, 5m, 1h", s));
    total += static_cast<int64_t>(v * unit);
  }
  return now - total;
}

int cmd_logs(Client& c, const LogsOptions& o) {
  std::string id = c.resolve_container(o.container);
  cri::ContainerStatusRequest req;
  req.set_container_id(id);
  cri::ContainerStatusResponse resp;
  BERTHCTL_CALL(c, runtime, ContainerStatus, req, resp);
  const std::string& path = resp.status().log_path();
  if (path.empty()) throw std::runtime_error(fmt::format("container {} has no log path", id));

  Printer p{o, o.since.empty() ? INT64_MIN : parse_since(o.since, now_nanos())};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("open log {}: {}", path, std::strerror(errno)));
  struct stat st;
  fstat(fd, &st);
  std::string carry;
  // --tail: the last N lines of what is there now; what comes later is printed as it comes.
  std::deque<std::pair<int, std::string>> tail;
  if (o.tail >= 0) p.tail_buffer = &tail;
  drain(fd, carry, p);
  p.tail_buffer = nullptr;
  for (const auto& [out_fd, text] : tail) Printer::write_all(out_fd, text);
  if (!o.follow) {
    ::close(fd);
    return 0;
  }
  auto last_check = std::chrono::steady_clock::now();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    drain(fd, carry, p);
    struct stat now_st;
    if (::stat(path.c_str(), &now_st) == 0 && (now_st.st_ino != st.st_ino || now_st.st_dev != st.st_dev)) {
      // Rotated: the old file is read to its end above; go on with the new one.
      int nfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (nfd >= 0) {
        drain(fd, carry, p);
        ::close(fd);
        fd = nfd;
        fstat(fd, &st);
        carry.clear();
        drain(fd, carry, p);
      }
    }
    if (std::chrono::steady_clock::now() - last_check > std::chrono::seconds(1)) {
      last_check = std::chrono::steady_clock::now();
      if (!running(c, id)) {
        drain(fd, carry, p);
        ::close(fd);
        return 0;
      }
    }
  }
}

} // namespace berth::ctl
