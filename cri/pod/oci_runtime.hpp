// The OCI runtime a runtime handler names (berth by default; runc and crun work the
// same), driven through runc's command line as every runc client does.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth::cri {

struct RuntimeHandler {
  std::string name;                 // CRI runtime_handler ("" is the default handler)
  std::string binary;               // absolute path
  std::vector<std::string> args;    // extra global flags from the config
  std::string root;                 // --root: the runtime's state directory
  bool systemd_cgroup = false;      // --systemd-cgroup (the systemd cgroup driver)
  std::chrono::milliseconds timeout{60000};

  // Global flags for every call: args, --root, --systemd-cgroup.
  std::vector<std::string> global_args() const;
};

class OciRuntime {
public:
  explicit OciRuntime(RuntimeHandler h) : h_(std::move(h)) {}
  const RuntimeHandler& handler() const { return h_; }

  // `kill ID SIGNAL` (with --all: every process of the container). A container that is
  // already gone is not an error.
  void kill(const std::string& id, int signal, bool all = false) const;
  // `delete --force ID`; a container the runtime does not know is not an error.
  void remove(const std::string& id) const;
  // `update --resources - ID` with linux.resources JSON on stdin.
  void update(const std::string& id, const json& resources) const;
  // `state ID`; nullopt when the runtime does not know the id.
  std::optional<json> state(const std::string& id) const;
  // `list --format json`: the ids the runtime holds under its root.
  std::vector<std::string> list() const;

private:
  std::string call(const std::vector<std::string>& args, std::string_view input, bool* not_found) const;
  RuntimeHandler h_;
};

} // namespace berth::cri
