// ContainerStats, PodSandboxStats (and their List forms) and the CRI metrics calls:
// cgroup v2 usage of the container or the pod's cgroup parent, the writable layer's
// disk use, the pod's network counters read inside its pinned namespace.
#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/pod/cgroup_stats.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

std::optional<uint64_t> Runtime::nano_cores(const std::string& key, int64_t ts, uint64_t usage) {
  std::lock_guard lk(misc_mu_);
  auto& prev = cpu_samples_[key];
  std::optional<uint64_t> rate;
  if (prev.first > 0 && ts > prev.first && usage >= prev.second)
    rate = static_cast<uint64_t>(static_cast<double>(usage - prev.second) * 1e9 / static_cast<double>(ts - prev.first));
  prev = {ts, usage};
  return rate;
}

void Runtime::forget_cpu_sample(const std::string& key) {
  std::lock_guard lk(misc_mu_);
  cpu_samples_.erase(key);
}

namespace {

void set(runtime::v1::UInt64Value* v, std::optional<uint64_t> x) {
  if (x) v->set_value(*x);
}

void fill_usage(Runtime& rt, const std::string& key, const std::optional<CgroupUsage>& u, int64_t ts,
                runtime::v1::CpuUsage* cpu, runtime::v1::MemoryUsage* mem, runtime::v1::SwapUsage* swap) {
  // The kubelet and critest expect both objects with a timestamp, values where known.
  cpu->set_timestamp(ts);
  mem->set_timestamp(ts);
  if (swap) swap->set_timestamp(ts);
  if (!u) return;
  if (u->cpu_usage_ns) {
    set(cpu->mutable_usage_core_nano_seconds(), u->cpu_usage_ns);
    set(cpu->mutable_usage_nano_cores(), rt.nano_cores(key, ts, *u->cpu_usage_ns));
  }
  if (u->memory_working_set_bytes) set(mem->mutable_working_set_bytes(), u->memory_working_set_bytes);
  if (u->memory_available_bytes) set(mem->mutable_available_bytes(), u->memory_available_bytes);
  if (u->memory_usage_bytes) set(mem->mutable_usage_bytes(), u->memory_usage_bytes);
  if (u->memory_rss_bytes) set(mem->mutable_rss_bytes(), u->memory_rss_bytes);
  if (u->page_faults) set(mem->mutable_page_faults(), u->page_faults);
  if (u->major_page_faults) set(mem->mutable_major_page_faults(), u->major_page_faults);
  if (swap && u->swap_usage_bytes) set(swap->mutable_swap_usage_bytes(), u->swap_usage_bytes);
  if (swap && u->swap_available_bytes) set(swap->mutable_swap_available_bytes(), u->swap_available_bytes);
}

void container_stats(Runtime& rt, const Container& c, runtime::v1::ContainerStats* out) {
  ContainerRecord r;
  {
    std::lock_guard lk(c.mu);
    r = c.rec;
  }
  auto* attr = out->mutable_attributes();
  attr->set_id(r.id);
  *attr->mutable_metadata() = r.config.metadata();
  *attr->mutable_labels() = r.config.labels();
  *attr->mutable_annotations() = r.config.annotations();
  int64_t ts = now_ns();
  std::optional<CgroupUsage> usage;
  if (r.phase == ContainerPhase::running) usage = read_cgroup_usage(cgroup_dir(rt.config().cgroup_driver, r.cgroups_path));
  fill_usage(rt, r.id, usage, ts, out->mutable_cpu(), out->mutable_memory(), out->mutable_swap());
  auto* layer = out->mutable_writable_layer();
  layer->set_timestamp(ts);
  layer->mutable_fs_id()->set_mountpoint(rt.config().root + "/snapshots");
  try {
    auto disk = rt.images().snapshots().usage(r.id);
    layer->mutable_used_bytes()->set_value(disk.bytes);
    layer->mutable_inodes_used()->set_value(disk.inodes);
  } catch (const Error&) {
    // The snapshot went with a concurrent remove: no layer figures.
  }
}

bool labels_match(const google::protobuf::Map<std::string, std::string>& labels,
                  const google::protobuf::Map<std::string, std::string>& selector) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

void sandbox_stats(Runtime& rt, const Sandbox& s, runtime::v1::PodSandboxStats* out) {
  SandboxRecord r;
  {
    std::lock_guard lk(s.mu);
    r = s.rec;
  }
  auto* attr = out->mutable_attributes();
  attr->set_id(r.id);
  *attr->mutable_metadata() = r.config.metadata();
  *attr->mutable_labels() = r.config.labels();
  *attr->mutable_annotations() = r.config.annotations();
  auto* linux = out->mutable_linux();
  int64_t ts = now_ns();
  std::optional<CgroupUsage> usage;
  if (!r.cgroup_parent.empty()) usage = read_cgroup_usage(cgroup_parent_dir(rt.config().cgroup_driver, r.cgroup_parent));
  fill_usage(rt, "pod:" + r.id, usage, ts, linux->mutable_cpu(), linux->mutable_memory(), nullptr);
  linux->mutable_process()->set_timestamp(ts);
  if (usage && usage->process_count) linux->mutable_process()->mutable_process_count()->set_value(*usage->process_count);
  if (!r.netns.empty()) {
    auto* net = linux->mutable_network();
    net->set_timestamp(ts);
    for (const auto& i : read_netns_usage(r.netns)) {
      auto* iface = i.name == "eth0" ? net->mutable_default_interface() : net->add_interfaces();
      iface->set_name(i.name);
      iface->mutable_rx_bytes()->set_value(i.rx_bytes);
      iface->mutable_rx_errors()->set_value(i.rx_errors);
      iface->mutable_tx_bytes()->set_value(i.tx_bytes);
      iface->mutable_tx_errors()->set_value(i.tx_errors);
    }
  }
  for (auto& c : rt.containers_of(r.id)) {
    bool running;
    {
      std::lock_guard lk(c->mu);
      running = c->rec.phase == ContainerPhase::running;
    }
    if (running) container_stats(rt, *c, linux->add_containers());
  }
}

} // namespace

grpc::Status RuntimeServiceImpl::ContainerStats(grpc::ServerContext*, const runtime::v1::ContainerStatsRequest* req,
                                                runtime::v1::ContainerStatsResponse* resp) {
  return guarded("ContainerStats", [&] {
    container_stats(rt_, *rt_.container(req->container_id()), resp->mutable_stats());
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::ListContainerStats(grpc::ServerContext*, const runtime::v1::ListContainerStatsRequest* req,
                                                    runtime::v1::ListContainerStatsResponse* resp) {
  return guarded("ListContainerStats", [&] {
    const auto& f = req->filter();
    std::vector<ContainerPtr> list;
    if (!f.id().empty()) {
      if (auto c = rt_.find_container(f.id())) list.push_back(c);
    } else {
      list = rt_.containers();
    }
    for (auto& c : list) {
      {
        std::lock_guard lk(c->mu);
        // The kubelet lists stats of running containers (containerd's filter too).
        if (c->rec.phase != ContainerPhase::running) continue;
        if (!f.pod_sandbox_id().empty() && c->rec.sandbox_id.compare(0, f.pod_sandbox_id().size(), f.pod_sandbox_id()) != 0)
          continue;
        if (!labels_match(c->rec.config.labels(), f.label_selector())) continue;
      }
      container_stats(rt_, *c, resp->add_stats());
    }
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::PodSandboxStats(grpc::ServerContext*, const runtime::v1::PodSandboxStatsRequest* req,
                                                 runtime::v1::PodSandboxStatsResponse* resp) {
  return guarded("PodSandboxStats", [&] {
    sandbox_stats(rt_, *rt_.sandbox(req->pod_sandbox_id()), resp->mutable_stats());
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::ListPodSandboxStats(grpc::ServerContext*,
                                                     const runtime::v1::ListPodSandboxStatsRequest* req,
                                                     runtime::v1::ListPodSandboxStatsResponse* resp) {
  return guarded("ListPodSandboxStats", [&] {
    const auto& f = req->filter();
    std::vector<SandboxPtr> list;
    if (!f.id().empty()) {
      if (auto s = rt_.find_sandbox(f.id())) list.push_back(s);
    } else {
      list = rt_.sandboxes();
    }
    for (auto& s : list) {
      {
        std::lock_guard lk(s->mu);
        if (s->rec.phase != SandboxPhase::ready) continue;
        if (!labels_match(s->rec.config.labels(), f.label_selector())) continue;
      }
      sandbox_stats(rt_, *s, resp->add_stats());
    }
    return grpc::Status::OK;
  });
}

// ---- CRI metrics (the kubelet's PodAndContainerStatsFromCRI): cAdvisor's names ----

namespace {

struct MetricDef {
  const char* name;
  const char* help;
  runtime::v1::MetricType type;
};

constexpr MetricDef kContainerMetrics[] = {
    {"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", runtime::v1::COUNTER},
    {"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed",
     runtime::v1::GAUGE},
    {"container_memory_working_set_bytes", "Current working set in bytes.", runtime::v1::GAUGE},
    {"container_memory_rss", "Size of RSS in bytes.", runtime::v1::GAUGE},
    {"container_memory_failures_total", "Cumulative count of memory allocation failures.", runtime::v1::COUNTER},
    {"container_oom_events_total", "Count of out of memory events observed for the container", runtime::v1::COUNTER},
    {"container_processes", "Number of processes running inside the container.", runtime::v1::GAUGE},
    {"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.",
     runtime::v1::GAUGE},
    {"container_fs_inodes_total", "Number of inodes used by the container on this filesystem.", runtime::v1::GAUGE},
};

constexpr MetricDef kPodMetrics[] = {
    {"container_network_receive_bytes_total", "Cumulative count of bytes received", runtime::v1::COUNTER},
    {"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving",
     runtime::v1::COUNTER},
    {"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", runtime::v1::COUNTER},
    {"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting",
     runtime::v1::COUNTER},
};

void add_metric(google::protobuf::RepeatedPtrField<runtime::v1::Metric>* out, const MetricDef& d, int64_t ts,
                std::optional<uint64_t> value, std::vector<std::string> labels = {}) {
  if (!value) return;
  auto* m = out->Add();
  m->set_name(d.name);
  m->set_timestamp(ts);
  m->set_metric_type(d.type);
  for (auto& l : labels) m->add_label_values(l);
  m->mutable_value()->set_value(*value);
}

} // namespace

grpc::Status RuntimeServiceImpl::ListMetricDescriptors(grpc::ServerContext*,
                                                       const runtime::v1::ListMetricDescriptorsRequest*,
                                                       runtime::v1::ListMetricDescriptorsResponse* resp) {
  for (const auto& d : kContainerMetrics) {
    auto* m = resp->add_descriptors();
    m->set_name(d.name);
    m->set_help(d.help);
    for (const char* k : {"id", "name", "image"}) m->add_label_keys(k);
  }
  for (const auto& d : kPodMetrics) {
    auto* m = resp->add_descriptors();
    m->set_name(d.name);
    m->set_help(d.help);
    for (const char* k : {"id", "name", "interface"}) m->add_label_keys(k);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListPodSandboxMetrics(grpc::ServerContext*,
                                                       const runtime::v1::ListPodSandboxMetricsRequest*,
                                                       runtime::v1::ListPodSandboxMetricsResponse* resp) {
  return guarded("ListPodSandboxMetrics", [&] {
    for (auto& s : rt_.sandboxes()) {
      SandboxRecord pod;
      {
        std::lock_guard lk(s->mu);
        if (s->rec.phase != SandboxPhase::ready) continue;
        pod = s->rec;
      }
      auto* pm = resp->add_pod_metrics();
      pm->set_pod_sandbox_id(pod.id);
      int64_t ts = now_ns();
      if (!pod.netns.empty())
        for (const auto& i : read_netns_usage(pod.netns)) {
          std::vector<std::string> labels = {pod.id, pod.config.metadata().name(), i.name};
          add_metric(pm->mutable_metrics(), kPodMetrics[0], ts, i.rx_bytes, labels);
          add_metric(pm->mutable_metrics(), kPodMetrics[1], ts, i.rx_errors, labels);
          add_metric(pm->mutable_metrics(), kPodMetrics[2], ts, i.tx_bytes, labels);
          add_metric(pm->mutable_metrics(), kPodMetrics[3], ts, i.tx_errors, labels);
        }
      for (auto& c : rt_.containers_of(pod.id)) {
        ContainerRecord r;
        {
          std::lock_guard lk(c->mu);
          if (c->rec.phase != ContainerPhase::running) continue;
          r = c->rec;
        }
        auto* cm = pm->add_container_metrics();
        cm->set_container_id(r.id);
        std::vector<std::string> labels = {r.id, r.config.metadata().name(), r.image_name};
        auto u = read_cgroup_usage(cgroup_dir(rt_.config().cgroup_driver, r.cgroups_path));
        if (u) {
          std::optional<uint64_t> cpu_s;
          if (u->cpu_usage_ns) cpu_s = *u->cpu_usage_ns / 1000000000;
          add_metric(cm->mutable_metrics(), kContainerMetrics[0], ts, cpu_s, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[1], ts, u->memory_usage_bytes, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[2], ts, u->memory_working_set_bytes, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[3], ts, u->memory_rss_bytes, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[4], ts, u->page_faults, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[5], ts, u->oom_events, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[6], ts, u->process_count, labels);
        }
        try {
          auto disk = rt_.images().snapshots().usage(r.id);
          add_metric(cm->mutable_metrics(), kContainerMetrics[7], ts, disk.bytes, labels);
          add_metric(cm->mutable_metrics(), kContainerMetrics[8], ts, disk.inodes, labels);
        } catch (const Error&) {
        }
      }
    }
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
