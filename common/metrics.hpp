// A small Prometheus metrics core for berthd and berthlet (docs/metrics.md): counters,
// gauges and fixed-bucket histograms updated with atomics, label sets drawn from our own
// finite sets (method names, gRPC codes, probe results: never request strings, and each
// family refuses more than kMaxSeries children), collectors run at scrape time for values
// derived from state the daemon already keeps (pods by state), and the text exposition
// format 0.0.4. prometheus-cpp is not packaged in Debian 12, and this is all we need of it.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace berth::metrics {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Appends the exposition text of samples and family headers; used by families and collectors.
class Writer {
public:
  explicit Writer(std::string& out) : out_(out) {}
  // "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram).
  void header(std::string_view name, std::string_view help, std::string_view type);
  // name{k="v",...} value
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, const Labels& labels, uint64_t value);

private:
  void name_and_labels(std::string_view name, const Labels& labels);
  std::string& out_;
};

// Escaping of the text format: label values escape \ " and newline; HELP text \ and newline.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// Numbers as Prometheus writes them: integers exactly, +Inf, -Inf, NaN, else shortest round-trip.
std::string format_value(double v);

class Counter {
public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }
  void write(Writer& w, std::string_view name, const Labels& labels) const { w.sample(name, labels, value()); }

private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d) { v_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }
  void write(Writer& w, std::string_view name, const Labels& labels) const { w.sample(name, labels, value()); }

private:
  std::atomic<double> v_{0};
};

// Fixed upper bounds (ascending, without +Inf); counts are per bucket, cumulated when written.
class Histogram {
public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  void write(Writer& w, std::string_view name, const Labels& labels) const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last: +Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Bucket sets used across the daemons (seconds).
const std::vector<double>& rpc_latency_buckets();   // 100 us .. 60 s
const std::vector<double>& long_latency_buckets();  // 10 ms .. 10 min (pulls)

class FamilyBase {
public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  virtual void write(Writer& w) const = 0;
  const std::string& name() const { return name_; }

  // Children per family: labels come from finite sets, so this is never reached by design;
  // if it is, further label sets share one child whose values are all "overflow".
  static constexpr size_t kMaxSeries = 512;

protected:
  Labels labels_of(const std::vector<std::string>& values) const;
  std::string name_, help_;
  std::vector<std::string> label_names_;
};

// A metric with fixed label names; one child per label-value set, created on first use
// and never removed (callers on hot paths keep the reference they get).
template <typename T>
class Family final : public FamilyBase {
public:
  using Factory = std::function<std::unique_ptr<T>()>;
  Family(std::string name, std::string help, std::vector<std::string> label_names, std::string type, Factory make)
      : FamilyBase(std::move(name), std::move(help), std::move(label_names)), type_(std::move(type)),
        make_(std::move(make)) {}

  // Values in the order of the label names.
  T& with(std::initializer_list<std::string_view> values) {
    std::vector<std::string> key(values.begin(), values.end());
    key.resize(label_names_.size());
    std::lock_guard lk(mu_);
    auto it = children_.find(key);
    if (it != children_.end()) return *it->second;
    if (children_.size() >= kMaxSeries) key.assign(label_names_.size(), "overflow");
    auto& slot = children_[key];
    if (!slot) slot = make_();
    return *slot;
  }

  void write(Writer& w) const override {
    w.header(name_, help_, type_);
    std::lock_guard lk(mu_);
    for (const auto& [values, child] : children_) child->write(w, name_, labels_of(values));
  }

private:
  std::string type_;
  Factory make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

class Registry {
public:
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels,
                               const std::vector<double>& bounds);
  // Runs at every scrape, after the families, writing its own headers and samples.
  void add_collector(std::function<void(Writer&)> collect);
  // The whole exposition (text format 0.0.4).
  std::string render() const;

private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
  std::vector<std::function<void(Writer&)>> collectors_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, from /proc/self (as the
// Prometheus client libraries' process collector).
void add_process_collector(Registry& r);

// "text/plain; version=0.0.4; charset=utf-8"
extern const char* const kContentType;

} // namespace berth::metrics
