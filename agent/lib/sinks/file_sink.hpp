// The file sink: <directory>/node.json and <directory>/pods/<namespace>_<name>.json, each
// replaced atomically (temp file, fsync, rename) so a reader sees a whole document or the
// previous one; a pod's deletion removes its file. Events are not kept (a directory of
// states is no log): they are acknowledged and counted as delivered. The pod set sent at
// start removes the files of pods that are gone.
#pragma once

#include <functional>

#include "agent/lib/sinks/sink.hpp"
#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

class FileSink final : public StatusSink {
public:
  explicit FileSink(const SinkConfig& config);
  Delivery deliver(const SinkItem& item) override;

private:
  Delivery remove_stale(const nlohmann::json& pod_set);
  void remove_pod_files(const std::function<bool(const std::string&)>& pred);
  std::string dir_;
};

// "<namespace>_<name>.json" when both are DNS-1123 names (they cannot hold '_' or '/'),
// else "" (the item is rejected: no path is built from anything else).
std::string pod_file_name(const nlohmann::json& pod);

} // namespace berth::agent
