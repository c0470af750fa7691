// version, info and events: the runtime as a whole.
#include <iostream>
#include <stdexcept>

#include <fmt/format.h>

#include "ctl/lib/output.hpp"
#include "ctl/lib/verbs.hpp"

namespace berth::ctl {

Labels parse_labels(const std::vector<std::string>& kvs) {
  Labels out;
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument(fmt::format("--label {:?}: expected key=value", kv));
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

int cmd_version(Client& c) {
  cri::VersionRequest req;
  req.set_version("v1");
  cri::VersionResponse resp;
  BERTHCTL_CALL(c, runtime, Version, req, resp);
  std::cout << fmt::format("Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}\n",
                           resp.version(), resp.runtime_name(), resp.runtime_version(), resp.runtime_api_version());
  return 0;
}

int cmd_info(Client& c, const std::string& output) {
  Format f = parse_format(output == "table" ? "json" : output);
  cri::StatusRequest req;
  req.set_verbose(true);
  cri::StatusResponse resp;
  BERTHCTL_CALL(c, runtime, Status, req, resp);
  print_status(std::cout, resp.status(), resp.info(), f);
  return 0;
}

int cmd_events(Client& c, const EventsOptions& o) {
  Format f = parse_format(o.output);
  cri::GetEventsRequest req;
  auto ctx = c.context(std::chrono::milliseconds(-1));
  auto reader = c.runtime().GetContainerEvents(ctx.get(), req);
  cri::ContainerEventResponse ev;
  while (reader->Read(&ev)) {
    if (f == Format::table) {
      std::cout << fmt::format("{} {} container={} pod={}/{}\n", rfc3339(ev.created_at()),
                               cri::ContainerEventType_Name(ev.container_event_type()), ev.container_id(),
                               ev.pod_sandbox_status().metadata().namespace_(),
                               ev.pod_sandbox_status().metadata().name());
    } else if (f == Format::json) {
      std::cout << to_json(ev).dump() << '\n';
    } else {
      std::cout << "---\n" << to_yaml(to_json(ev));
    }
    std::cout.flush();
  }
  check(reader->Finish(), "GetContainerEvents");
  return 0;
}

} // namespace berth::ctl
