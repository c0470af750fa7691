// ps, create, run, start, stop, rm, inspect: containers.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "ctl/lib/config_input.hpp"
#include "ctl/lib/name_filter.hpp"
#include "ctl/lib/output.hpp"
#include "ctl/lib/verbs.hpp"

namespace berth::ctl {
namespace {

const char* container_state(cri::ContainerState s) {
  switch (s) {
  case cri::CONTAINER_CREATED: return "Created";
  case cri::CONTAINER_RUNNING: return "Running";
  case cri::CONTAINER_EXITED: return "Exited";
  default: return "Unknown";
  }
}

std::vector<cri::Container> list_containers(Client& c, const PsOptions& o) {
  cri::ListContainersRequest req;
  auto* f = req.mutable_filter();
  if (!o.id.empty()) f->set_id(o.id);
  if (!o.pod.empty()) f->set_pod_sandbox_id(c.resolve_pod(o.pod));
  std::string state = o.state;
  std::transform(state.begin(), state.end(), state.begin(), ::tolower);
  if (state.empty() && !o.all) state = "running";
  if (state == "created") f->mutable_state()->set_state(cri::CONTAINER_CREATED);
  else if (state == "running") f->mutable_state()->set_state(cri::CONTAINER_RUNNING);
  else if (state == "exited") f->mutable_state()->set_state(cri::CONTAINER_EXITED);
  else if (state == "unknown") f->mutable_state()->set_state(cri::CONTAINER_UNKNOWN);
  else if (!state.empty())
    throw std::invalid_argument(fmt::format("--state {:?}: created, running, exited or unknown", o.state));
  for (const auto& [k, v] : parse_labels(o.labels)) (*f->mutable_label_selector())[k] = v;
  NameFilter name(o.name, "--name"); // a bad expression fails before the call
  cri::ListContainersResponse resp;
  BERTHCTL_CALL(c, runtime, ListContainers, req, resp);
  std::vector<cri::Container> out;
  for (const auto& ct : resp.containers()) {
    if (!name.matches(ct.metadata().name())) continue;
    if (!o.image.empty() && ct.image().image() != o.image && ct.image_ref() != o.image) continue;
    out.push_back(ct);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created_at() > b.created_at(); });
  size_t keep = o.latest ? 1 : o.last > 0 ? static_cast<size_t>(o.last) : out.size();
  if (out.size() > keep) out.resize(keep);
  return out;
}

// Pulls the container's image unless the runtime has it (crictl create does the same).
void ensure_image(Client& c, const cri::ContainerConfig& cfg, const cri::PodSandboxConfig& pod) {
  cri::ImageStatusRequest sreq;
  *sreq.mutable_image() = cfg.image();
  cri::ImageStatusResponse sresp;
  BERTHCTL_CALL(c, images, ImageStatus, sreq, sresp);
  if (sresp.has_image()) return;
  cri::PullImageRequest req;
  *req.mutable_image() = cfg.image();
  *req.mutable_sandbox_config() = pod;
  cri::PullImageResponse resp;
  auto ctx = c.context(std::chrono::milliseconds(-1));
  check(c.images().PullImage(ctx.get(), req, &resp), "PullImage");
}

std::string create(Client& c, const std::string& pod_id, const CreateOptions& o) {
  cri::CreateContainerRequest req;
  req.set_pod_sandbox_id(c.resolve_pod(pod_id));
  load_config(o.container_config, *req.mutable_config());
  load_config(o.pod_config, *req.mutable_sandbox_config());
  if (!o.no_pull) ensure_image(c, req.config(), req.sandbox_config());
  cri::CreateContainerResponse resp;
  auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(60000)));
  check(c.runtime().CreateContainer(ctx.get(), req, &resp), "CreateContainer");
  return resp.container_id();
}

void start(Client& c, const std::string& id) {
  cri::StartContainerRequest req;
  req.set_container_id(id);
  cri::StartContainerResponse resp;
  auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(60000)));
  check(c.runtime().StartContainer(ctx.get(), req, &resp), "StartContainer");
}

void stop(Client& c, const std::string& id, int64_t timeout) {
  cri::StopContainerRequest req;
  req.set_container_id(id);
  req.set_timeout(timeout);
  cri::StopContainerResponse resp;
  // The runtime waits `timeout` seconds before it kills: the deadline covers that.
  auto ctx = c.context(c.timeout() + std::chrono::seconds(timeout + 30));
  check(c.runtime().StopContainer(ctx.get(), req, &resp), "StopContainer");
}

} // namespace

int cmd_ps(Client& c, const PsOptions& o) {
  Format f = parse_format(o.output);
  auto cts = list_containers(c, o);
  if (o.quiet) {
    for (const auto& ct : cts) std::cout << ct.id() << '\n';
    return 0;
  }
  if (f != Format::table) {
    auto items = nlohmann::json::array();
    for (const auto& ct : cts) items.push_back(to_json(ct));
    print_tree(std::cout, {{"containers", items}}, f);
    return 0;
  }
  // The POD column names the pod: one ListPodSandbox for all of them.
  std::map<std::string, std::string> pod_names;
  if (!cts.empty()) {
    cri::ListPodSandboxRequest req;
    cri::ListPodSandboxResponse resp;
    BERTHCTL_CALL(c, runtime, ListPodSandbox, req, resp);
    for (const auto& p : resp.items()) pod_names[p.id()] = p.metadata().name();
  }
  Table t({"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"});
  for (const auto& ct : cts) {
    std::string image = ct.image().image();
    if (image.rfind("sha256:", 0) == 0) image = short_id(image);
    t.add({short_id(ct.id()), image, ago(ct.created_at()), container_state(ct.state()), ct.metadata().name(),
           std::to_string(ct.metadata().attempt()), short_id(ct.pod_sandbox_id()), pod_names[ct.pod_sandbox_id()]});
  }
  t.print(std::cout);
  return 0;
}

int cmd_create(Client& c, const CreateOptions& o) {
  std::cout << create(c, o.pod_id, o) << '\n';
  return 0;
}

int cmd_run(Client& c, const CreateOptions& o, const std::string& runtime_handler) {
  cri::RunPodSandboxRequest preq;
  load_config(o.pod_config, *preq.mutable_config());
  cri::ContainerConfig check_config;  // fail on a bad container config before the pod exists
  load_config(o.container_config, check_config);
  preq.set_runtime_handler(runtime_handler);
  cri::RunPodSandboxResponse presp;
  auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(120000)));
  check(c.runtime().RunPodSandbox(ctx.get(), preq, &presp), "RunPodSandbox");
  std::string id = create(c, presp.pod_sandbox_id(), o);
  start(c, id);
  std::cout << id << '\n';
  return 0;
}

int cmd_start(Client& c, const std::vector<std::string>& ids) {
  for (const auto& given : ids) {
    std::string id = c.resolve_container(given);
    start(c, id);
    std::cout << id << '\n';
  }
  return 0;
}

int cmd_stop(Client& c, const std::vector<std::string>& ids, int64_t timeout) {
  for (const auto& given : ids) {
    std::string id = c.resolve_container(given);
    stop(c, id, timeout);
    std::cout << id << '\n';
  }
  return 0;
}

int cmd_rm(Client& c, std::vector<std::string> ids, bool force, bool all) {
  if (all) {
    PsOptions o;
    o.all = true;
    ids.clear();
    for (const auto& ct : list_containers(c, o)) ids.push_back(ct.id());
  }
  if (ids.empty() && !all) throw std::invalid_argument("rm: ID cannot be empty");
  for (const auto& given : ids) {
    std::string id = c.resolve_container(given);
    cri::ContainerStatusRequest sreq;
    sreq.set_container_id(id);
    cri::ContainerStatusResponse sresp;
    BERTHCTL_CALL(c, runtime, ContainerStatus, sreq, sresp);
    if (sresp.status().state() == cri::CONTAINER_RUNNING) {
      if (!force)
        throw std::runtime_error(fmt::format("container {} is running, please stop it first or use -f", id));
      stop(c, id, 0);
    }
    cri::RemoveContainerRequest req;
    req.set_container_id(id);
    cri::RemoveContainerResponse resp;
    auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(60000)));
    check(c.runtime().RemoveContainer(ctx.get(), req, &resp), "RemoveContainer");
    std::cout << id << '\n';
  }
  return 0;
}

int cmd_inspect(Client& c, const std::vector<std::string>& ids, const std::string& output) {
  Format f = parse_format(output == "table" ? "json" : output);
  for (const auto& given : ids) {
    cri::ContainerStatusRequest req;
    req.set_container_id(c.resolve_container(given));
    req.set_verbose(true);
    cri::ContainerStatusResponse resp;
    BERTHCTL_CALL(c, runtime, ContainerStatus, req, resp);
    print_status(std::cout, resp.status(), resp.info(), f);
  }
  return 0;
}

} // namespace berth::ctl
