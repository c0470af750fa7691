// pods, runp, stopp, rmp, inspectp: pod sandboxes.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "ctl/lib/config_input.hpp"
#include "ctl/lib/name_filter.hpp"
#include "ctl/lib/output.hpp"
#include "ctl/lib/verbs.hpp"

namespace berth::ctl {
namespace {

const char* pod_state(cri::PodSandboxState s) { return s == cri::SANDBOX_READY ? "Ready" : "NotReady"; }

std::vector<cri::PodSandbox> list_pods(Client& c, const PodsOptions& o) {
  cri::ListPodSandboxRequest req;
  auto* f = req.mutable_filter();
  if (!o.id.empty()) f->set_id(o.id);
  if (!o.state.empty()) {
    std::string s = o.state;
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    if (s == "ready") f->mutable_state()->set_state(cri::SANDBOX_READY);
    else if (s == "notready") f->mutable_state()->set_state(cri::SANDBOX_NOTREADY);
    else throw std::invalid_argument(fmt::format("--state {:?}: ready or notready", o.state));
  }
  for (const auto& [k, v] : parse_labels(o.labels)) (*f->mutable_label_selector())[k] = v;
  NameFilter name(o.name, "--name"), ns(o.namespace_, "--namespace"); // bad ones fail before the call
  cri::ListPodSandboxResponse resp;
  BERTHCTL_CALL(c, runtime, ListPodSandbox, req, resp);
  std::vector<cri::PodSandbox> pods;
  for (const auto& p : resp.items()) {
    if (!name.matches(p.metadata().name()) || !ns.matches(p.metadata().namespace_())) continue;
    pods.push_back(p);
  }
  std::sort(pods.begin(), pods.end(), [](auto& a, auto& b) { return a.created_at() > b.created_at(); });
  size_t keep = o.latest ? 1 : o.last > 0 ? static_cast<size_t>(o.last) : pods.size();
  if (pods.size() > keep) pods.resize(keep);
  return pods;
}

} // namespace

int cmd_pods(Client& c, const PodsOptions& o) {
  Format f = parse_format(o.output);
  auto pods = list_pods(c, o);
  if (o.quiet) {
    for (const auto& p : pods) std::cout << p.id() << '\n';
    return 0;
  }
  if (f != Format::table) {
    auto items = nlohmann::json::array();
    for (const auto& p : pods) items.push_back(to_json(p));
    print_tree(std::cout, {{"items", items}}, f);
    return 0;
  }
  Table t({"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"});
  for (const auto& p : pods)
    t.add({short_id(p.id()), ago(p.created_at()), pod_state(p.state()), p.metadata().name(),
           p.metadata().namespace_(), std::to_string(p.metadata().attempt()),
           p.runtime_handler().empty() ? "(default)" : p.runtime_handler()});
  t.print(std::cout);
  return 0;
}

int cmd_runp(Client& c, const std::string& config_path, const std::string& runtime_handler) {
  cri::RunPodSandboxRequest req;
  load_config(config_path, *req.mutable_config());
  req.set_runtime_handler(runtime_handler);
  cri::RunPodSandboxResponse resp;
  // Pulling the pause image and setting up the network take longer than one RPC deadline.
  auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(120000)));
  check(c.runtime().RunPodSandbox(ctx.get(), req, &resp), "RunPodSandbox");
  std::cout << resp.pod_sandbox_id() << '\n';
  return 0;
}

int cmd_stopp(Client& c, const std::vector<std::string>& ids) {
  for (const auto& given : ids) {
    cri::StopPodSandboxRequest req;
    req.set_pod_sandbox_id(c.resolve_pod(given));
    cri::StopPodSandboxResponse resp;
    auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(60000)));
    check(c.runtime().StopPodSandbox(ctx.get(), req, &resp), "StopPodSandbox");
    std::cout << "Stopped sandbox " << req.pod_sandbox_id() << '\n';
  }
  return 0;
}

int cmd_rmp(Client& c, std::vector<std::string> ids, bool force, bool all) {
  if (all) {
    ids.clear();
    for (const auto& p : list_pods(c, {})) ids.push_back(p.id());
  }
  if (ids.empty() && !all) throw std::invalid_argument("rmp: ID cannot be empty");
  for (const auto& given : ids) {
    std::string id = c.resolve_pod(given);
    if (!force) {
      cri::PodSandboxStatusRequest sreq;
      sreq.set_pod_sandbox_id(id);
      cri::PodSandboxStatusResponse sresp;
      BERTHCTL_CALL(c, runtime, PodSandboxStatus, sreq, sresp);
      if (sresp.status().state() == cri::SANDBOX_READY)
        throw std::runtime_error(fmt::format("pod sandbox {} is running, please stop it first or use -f", id));
    }
    cri::RemovePodSandboxRequest req;
    req.set_pod_sandbox_id(id);
    cri::RemovePodSandboxResponse resp;
    auto ctx = c.context(std::max(c.timeout(), std::chrono::milliseconds(60000)));
    check(c.runtime().RemovePodSandbox(ctx.get(), req, &resp), "RemovePodSandbox");
    std::cout << "Removed sandbox " << id << '\n';
  }
  return 0;
}

int cmd_inspectp(Client& c, const std::vector<std::string>& ids, const std::string& output) {
  Format f = parse_format(output == "table" ? "json" : output);
  for (const auto& given : ids) {
    cri::PodSandboxStatusRequest req;
    req.set_pod_sandbox_id(c.resolve_pod(given));
    req.set_verbose(true);
    cri::PodSandboxStatusResponse resp;
    BERTHCTL_CALL(c, runtime, PodSandboxStatus, req, resp);
    print_status(std::cout, resp.status(), resp.info(), f);
  }
  return 0;
}

} // namespace berth::ctl
