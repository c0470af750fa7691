// berth-bridge's commands. Each returns the JSON to print on success (null for
// none) and throws CniFailure/Error on failure.
#pragma once

#include "cni/bridge/conf.hpp"
#include "cni/lib/exec.hpp"

namespace berth::cni {

json bridge_add(const BridgeConf& c, const Invocation& inv);
void bridge_del(const BridgeConf& c, const Invocation& inv);
void bridge_check(const BridgeConf& c, const Invocation& inv);
void bridge_gc(const BridgeConf& c, const Invocation& inv);
void bridge_status(const BridgeConf& c, const Invocation& inv);

// The versions berth-bridge accepts in a configuration.
const std::vector<std::string>& bridge_versions();

} // namespace berth::cni
