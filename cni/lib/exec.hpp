// Runs one CNI plugin binary (spec section 2): the CNI_* environment, the
// configuration on stdin, the result or error object on stdout, a deadline.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/subprocess.hpp"
#include "cni/lib/version.hpp"

namespace berth::cni {

// A plugin's error result ({"code","msg","details"}) or a failure to run it.
class PluginError : public Error {
public:
  PluginError(uint32_t cni_code, std::string msg, std::string details)
      : Error(0, std::move(msg)), cni_code_(cni_code), details_(std::move(details)) {}
  uint32_t cni_code() const { return cni_code_; }
  const std::string& details() const { return details_; }

private:
  uint32_t cni_code_;
  std::string details_;
};

struct PluginInvocation {
  std::string command; // ADD, DEL, CHECK, STATUS, VERSION, GC
  std::string container_id;
  std::string netns;
  std::string ifname;
  std::vector<std::pair<std::string, std::string>> args; // CNI_ARGS
  std::vector<std::string> path;                         // CNI_PATH
};

// The first executable `type` in dirs; fails naming every directory searched.
std::string find_plugin(const std::string& type, const std::vector<std::string>& dirs);

// Runs the plugin and returns its stdout. A non-zero exit becomes a PluginError
// from the error object on stdout (or stderr when stdout is not one); a run past
// the timeout is killed and reported as such. Plugin stderr is passed through to
// ours only with pass_stderr.
std::string run_plugin(const std::string& path, const PluginInvocation& inv, std::string_view stdin_data,
                       std::chrono::milliseconds timeout, bool pass_stderr = false);

} // namespace berth::cni
