// The exposition format of common/metrics: escaping, histogram buckets, label sets,
// the series bound. Checked line by line against what Prometheus' text parser expects.
#include <gtest/gtest.h>

#include <thread>

#include "common/metrics.hpp"

using namespace berth::metrics;

TEST(Metrics, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("x\\y\n\"z\""), "x\\\\y\\n\"z\"");
  Registry r;
  r.counter("t_total", "Help with \\ and\nnewline.", {"k"}).with({"va\"l\n"}).inc(3);
  EXPECT_EQ(r.render(),
            "# HELP t_total Help with \\\\ and\\nnewline.\n"
            "# TYPE t_total counter\n"
            "t_total{k=\"va\\\"l\\n\"} 3\n");
}

TEST(Metrics, FormatsValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(0.0001), "0.0001");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
  EXPECT_EQ(format_value(1e20), "1e+20");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  auto& h = r.histogram("lat_seconds", "Latency.", {"method"}, {0.1, 1, 10}).with({"Get"});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in that bucket (le is inclusive)
  h.observe(0.5);
  h.observe(100);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(r.render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{method=\"Get\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{method=\"Get\",le=\"1\"} 3\n"
            "lat_seconds_bucket{method=\"Get\",le=\"10\"} 3\n"
            "lat_seconds_bucket{method=\"Get\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{method=\"Get\"} 100.65\n"
            "lat_seconds_count{method=\"Get\"} 4\n");
}

TEST(Metrics, LabelSetsAreDistinctChildrenInOrder) {
  Registry r;
  auto& f = r.counter("calls_total", "Calls.", {"method", "code"});
  f.with({"B", "OK"}).inc();
  f.with({"A", "NotFound"}).inc(2);
  f.with({"B", "OK"}).inc();
  EXPECT_EQ(&f.with({"B", "OK"}), &f.with({"B", "OK"}));
  r.gauge("up", "Up.").with({}).set(1);
  EXPECT_EQ(r.render(),
            "# HELP calls_total Calls.\n# TYPE calls_total counter\n"
            "calls_total{method=\"A\",code=\"NotFound\"} 2\n"
            "calls_total{method=\"B\",code=\"OK\"} 2\n"
            "# HELP up Up.\n# TYPE up gauge\nup 1\n");
}

TEST(Metrics, SeriesAreBounded) {
  Registry r;
  auto& f = r.counter("c_total", "C.", {"k"});
  for (size_t i = 0; i < FamilyBase::kMaxSeries + 100; i++) f.with({std::to_string(i)}).inc();
  std::string text = r.render();
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 2 + FamilyBase::kMaxSeries + 1);
  EXPECT_NE(text.find("c_total{k=\"overflow\"} 100\n"), std::string::npos);
}

TEST(Metrics, CollectorsRunAtScrapeTime) {
  Registry r;
  int state = 1;
  r.add_collector([&](Writer& w) {
    w.header("pods", "Pods.", "gauge");
    w.sample("pods", {{"state", "ready"}}, static_cast<uint64_t>(state));
  });
  EXPECT_NE(r.render().find("pods{state=\"ready\"} 1\n"), std::string::npos);
  state = 7;
  EXPECT_NE(r.render().find("pods{state=\"ready\"} 7\n"), std::string::npos);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  auto& h = r.histogram("h", "H.", {}, rpc_latency_buckets()).with({});
  auto& c = r.counter("c_total", "C.").with({});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; i++) {
        h.observe(0.001);
        c.inc();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(h.count(), 40000u);
  EXPECT_EQ(c.value(), 40000u);
  EXPECT_NEAR(h.sum(), 40.0, 1e-6);
}

TEST(Metrics, ProcessCollectorReportsThisProcess) {
  Registry r;
  add_process_collector(r);
  std::string text = r.render();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_max_fds ", "process_start_time_seconds ", "process_virtual_memory_bytes "})
    EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name;
  auto pos = text.find("\nprocess_start_time_seconds ");
  double start = std::strtod(text.c_str() + pos + 28, nullptr);
  EXPECT_GT(start, 1.6e9);
  EXPECT_LE(start, static_cast<double>(time(nullptr)) + 1);
}
