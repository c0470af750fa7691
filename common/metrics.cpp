#include "common/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/fs.hpp"

namespace berth::metrics {

const char* const kContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    return std::string(buf, r.ptr);
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

void Writer::header(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Writer::name_and_labels(std::string_view name, const Labels& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escape_label_value(v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
}

void Writer::sample(std::string_view name, const Labels& labels, double value) {
  name_and_labels(name, labels);
  out_ += format_value(value);
  out_ += '\n';
}

void Writer::sample(std::string_view name, const Labels& labels, uint64_t value) {
  name_and_labels(name, labels);
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, r.ptr);
  out_ += '\n';
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); i++) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) i++;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::write(Writer& w, std::string_view name, const Labels& labels) const {
  std::string bucket = std::string(name) + "_bucket";
  Labels with_le = labels;
  with_le.emplace_back("le", "");
  // Read the buckets once; count is their total so that _count and +Inf always agree
  // even while observations land during the scrape.
  uint64_t cumulative = 0;
  std::string le;
  for (size_t i = 0; i <= bounds_.size(); i++) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    le = i < bounds_.size() ? format_value(bounds_[i]) : "+Inf";
    with_le.back().second = le;
    w.sample(bucket, with_le, cumulative);
  }
  w.sample(std::string(name) + "_sum", labels, sum());
  w.sample(std::string(name) + "_count", labels, cumulative);
}

const std::vector<double>& rpc_latency_buckets() {
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10, 30, 60};
  return b;
}

const std::vector<double>& long_latency_buckets() {
  static const std::vector<double> b = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  return b;
}

Labels FamilyBase::labels_of(const std::vector<std::string>& values) const {
  Labels l;
  l.reserve(label_names_.size());
  for (size_t i = 0; i < label_names_.size(); i++) l.emplace_back(label_names_[i], values[i]);
  return l;
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> labels) {
  auto f = std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels), "counter",
                                             [] { return std::make_unique<Counter>(); });
  auto& ref = *f;
  std::lock_guard lk(mu_);
  families_.push_back(std::move(f));
  return ref;
}

Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  auto f = std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(labels), "gauge",
                                           [] { return std::make_unique<Gauge>(); });
  auto& ref = *f;
  std::lock_guard lk(mu_);
  families_.push_back(std::move(f));
  return ref;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                                       const std::vector<double>& bounds) {
  auto f = std::make_unique<Family<Histogram>>(std::move(name), std::move(help), std::move(labels), "histogram",
                                               [bounds] { return std::make_unique<Histogram>(bounds); });
  auto& ref = *f;
  std::lock_guard lk(mu_);
  families_.push_back(std::move(f));
  return ref;
}

void Registry::add_collector(std::function<void(Writer&)> collect) {
  std::lock_guard lk(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::render() const {
  std::string out;
  out.reserve(16 << 10);
  Writer w(out);
  std::lock_guard lk(mu_);
  for (const auto& f : families_) f->write(w);
  for (const auto& c : collectors_) c(w);
  return out;
}

namespace {

// Fields of /proc/self/stat after the command name (which may hold spaces and parentheses).
std::vector<std::string> self_stat() {
  std::string s;
  try {
    s = read_file("/proc/self/stat");
  } catch (...) {
    return {};
  }
  auto close = s.rfind(')');
  if (close == std::string::npos) return {};
  std::vector<std::string> fields;
  size_t i = close + 2;
  while (i < s.size()) {
    size_t sp = s.find(' ', i);
    if (sp == std::string::npos) sp = s.size();
    fields.push_back(s.substr(i, sp - i));
    i = sp + 1;
  }
  return fields;  // fields[0] is "state" (field 3 of proc(5))
}

double boot_time() {
  std::string s;
  try {
    s = read_file("/proc/stat");
  } catch (...) {
    return 0;
  }
  auto pos = s.find("\nbtime ");
  return pos == std::string::npos ? 0 : std::strtod(s.c_str() + pos + 7, nullptr);
}

uint64_t count_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return 0;
  uint64_t n = 0;
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') n++;
  ::closedir(d);
  return n - 1;  // the directory's own fd
}

} // namespace

void add_process_collector(Registry& r) {
  double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  auto st = self_stat();
  // starttime (field 22 of proc(5)) is in ticks since boot: fixed for the process's life.
  double start = st.size() > 19 ? boot_time() + std::strtod(st[19].c_str(), nullptr) / ticks : 0;
  r.add_collector([ticks, page, start](Writer& w) {
    auto f = self_stat();
    if (f.size() > 21) {
      // utime, stime: fields 14 and 15; vsize 23; rss 24 (pages).
      double cpu = (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) / ticks;
      w.header("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter");
      w.sample("process_cpu_seconds_total", {}, cpu);
      w.header("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge");
      w.sample("process_virtual_memory_bytes", {}, std::strtod(f[20].c_str(), nullptr));
      w.header("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
      w.sample("process_resident_memory_bytes", {}, std::strtod(f[21].c_str(), nullptr) * page);
    }
    w.header("process_open_fds", "Number of open file descriptors.", "gauge");
    w.sample("process_open_fds", {}, count_fds());
    struct rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      w.header("process_max_fds", "Maximum number of open file descriptors.", "gauge");
      w.sample("process_max_fds", {}, static_cast<uint64_t>(rl.rlim_cur));
    }
    w.header("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge");
    w.sample("process_start_time_seconds", {}, start);
  });
}

} // namespace berth::metrics
