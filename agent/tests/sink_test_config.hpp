// For the status sink tests: the error a config with these statusSinks lines fails with.
#pragma once

#include <string>

#include "agent/lib/config.hpp"
#include "common/error.hpp"

namespace berth::agent {

inline std::string config_error(const std::string& sinks) {
  try {
    config_from_yaml("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" + sinks, "cfg.yaml");
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "(no error)";
}

} // namespace berth::agent
