// stats and statsp: resource usage. CPU % comes from two samples `--seconds` apart, as
// crictl computes it: the growth of usage_core_nano_seconds over the growth of the
// sample's timestamp.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "ctl/lib/output.hpp"
#include "ctl/lib/verbs.hpp"

namespace berth::ctl {
namespace {

template <typename Stats>
double cpu_percent(const Stats& now, const std::map<std::string, Stats>& before, const std::string& id) {
  auto it = before.find(id);
  if (it == before.end()) return 0;
  const auto& a = it->second.cpu();
  const auto& b = now.cpu();
  int64_t dt = b.timestamp() - a.timestamp();
  if (dt <= 0 || b.usage_core_nano_seconds().value() < a.usage_core_nano_seconds().value()) return 0;
  return static_cast<double>(b.usage_core_nano_seconds().value() - a.usage_core_nano_seconds().value()) /
         static_cast<double>(dt) * 100;
}

std::vector<cri::ContainerStats> sample(Client& c, const StatsOptions& o) {
  cri::ListContainerStatsRequest req;
  auto* f = req.mutable_filter();
  if (!o.id.empty()) f->set_id(c.resolve_container(o.id));
  if (!o.pod.empty()) f->set_pod_sandbox_id(c.resolve_pod(o.pod));
  for (const auto& [k, v] : parse_labels(o.labels)) (*f->mutable_label_selector())[k] = v;
  cri::ListContainerStatsResponse resp;
  BERTHCTL_CALL(c, runtime, ListContainerStats, req, resp);
  std::vector<cri::ContainerStats> out(resp.stats().begin(), resp.stats().end());
  if (!o.all) {
    // Running containers only, as crictl stats without -a.
    cri::ListContainersRequest lreq;
    lreq.mutable_filter()->mutable_state()->set_state(cri::CONTAINER_RUNNING);
    cri::ListContainersResponse lresp;
    BERTHCTL_CALL(c, runtime, ListContainers, lreq, lresp);
    std::set<std::string> live;
    for (const auto& ct : lresp.containers()) live.insert(ct.id());
    std::erase_if(out, [&](const cri::ContainerStats& s) { return !live.count(s.attributes().id()); });
  }
  return out;
}

void print_containers(const std::vector<cri::ContainerStats>& now,
                      const std::map<std::string, cri::ContainerStats>& before, Format f) {
  if (f != Format::table) {
    auto items = nlohmann::json::array();
    for (const auto& s : now) items.push_back(to_json(s));
    print_tree(std::cout, {{"stats", items}}, f);
    return;
  }
  Table t({"CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"});
  for (const auto& s : now)
    t.add({short_id(s.attributes().id()), s.attributes().metadata().name(),
           fmt::format("{:.2f}", cpu_percent(s, before, s.attributes().id())),
           human_size(static_cast<double>(s.memory().working_set_bytes().value())),
           human_size(static_cast<double>(s.writable_layer().used_bytes().value())),
           std::to_string(s.writable_layer().inodes_used().value())});
  t.print(std::cout);
}

template <typename Sample, typename Print>
int watch_loop(const StatsOptions& o, Sample take, Print print) {
  bool tty = isatty(STDOUT_FILENO) == 1;
  auto prev = take();
  do {
    std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
    auto now = take();
    if (o.watch && tty) std::cout << "\033[H\033[2J";  // redraw in place
    print(now, prev);
    std::cout.flush();
    prev = std::move(now);
  } while (o.watch);
  return 0;
}

} // namespace

int cmd_stats(Client& c, const StatsOptions& o) {
  Format f = parse_format(o.output);
  if (o.seconds < 1) throw std::invalid_argument("--seconds: at least 1");
  auto take = [&] {
    std::map<std::string, cri::ContainerStats> m;
    for (auto& s : sample(c, o)) m[s.attributes().id()] = s;
    return m;
  };
  return watch_loop(o, take, [&](const auto& now, const auto& before) {
    std::vector<cri::ContainerStats> v;
    for (const auto& [id, s] : now) v.push_back(s);
    std::sort(v.begin(), v.end(),
              [](auto& a, auto& b) { return a.attributes().metadata().name() < b.attributes().metadata().name(); });
    print_containers(v, before, f);
  });
}

int cmd_statsp(Client& c, const StatsOptions& o) {
  Format f = parse_format(o.output);
  if (o.seconds < 1) throw std::invalid_argument("--seconds: at least 1");
  auto take = [&] {
    cri::ListPodSandboxStatsRequest req;
    auto* fl = req.mutable_filter();
    if (!o.id.empty()) fl->set_id(c.resolve_pod(o.id));
    for (const auto& [k, v] : parse_labels(o.labels)) (*fl->mutable_label_selector())[k] = v;
    cri::ListPodSandboxStatsResponse resp;
    BERTHCTL_CALL(c, runtime, ListPodSandboxStats, req, resp);
    std::map<std::string, cri::PodSandboxStats> m;
    for (const auto& s : resp.stats()) m[s.attributes().id()] = s;
    return m;
  };
  return watch_loop(o, take, [&](const auto& now, const auto& before) {
    if (f != Format::table) {
      auto items = nlohmann::json::array();
      for (const auto& [id, s] : now) items.push_back(to_json(s));
      print_tree(std::cout, {{"stats", items}}, f);
      return;
    }
    Table t({"POD", "POD ID", "CPU %", "MEM"});
    for (const auto& [id, s] : now) {
      double cpu = 0;
      if (auto it = before.find(id); it != before.end()) {
        const auto& a = it->second.linux().cpu();
        const auto& b = s.linux().cpu();
        int64_t dt = b.timestamp() - a.timestamp();
        if (dt > 0 && b.usage_core_nano_seconds().value() >= a.usage_core_nano_seconds().value())
          cpu = static_cast<double>(b.usage_core_nano_seconds().value() - a.usage_core_nano_seconds().value()) /
                static_cast<double>(dt) * 100;
      }
      t.add({s.attributes().metadata().name(), short_id(id), fmt::format("{:.2f}", cpu),
             human_size(static_cast<double>(s.linux().memory().working_set_bytes().value()))});
    }
    t.print(std::cout);
  });
}

} // namespace berth::ctl
