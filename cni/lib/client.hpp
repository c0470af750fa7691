// The CNI 1.1 client (libcni's CNIConfig): runs a network's plugin chain for
// ADD/CHECK/DEL/STATUS/GC, keeps the attachment cache, negotiates versions.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "cni/lib/cache.hpp"
#include "cni/lib/config.hpp"
#include "cni/lib/exec.hpp"

namespace berth::cni {

struct RuntimeConf {
  std::string container_id;
  std::string netns;  // path of the network namespace (may be gone at DEL)
  std::string ifname; // e.g. eth0
  std::vector<std::pair<std::string, std::string>> args; // CNI_ARGS
  json capability_args = json::object(); // {"portMappings": [...], "mac": "..."}
};

struct ClientOptions {
  // Searched in order; Debian installs the reference plugins in /usr/lib/cni, and
  // berth-bridge goes to <prefix>/lib/cni.
  std::vector<std::string> bin_dirs = {"/opt/cni/bin", "/usr/local/lib/cni", "/usr/lib/cni"};
  std::string cache_dir = std::string(kDefaultCacheDir);
  std::chrono::milliseconds timeout{60000};
  bool pass_plugin_stderr = true;
  // A failed ADD is followed by a best-effort DEL of the whole list (as containerd
  // and CRI-O do), so plugins that ran, or half-ran, leave nothing behind.
  bool del_after_failed_add = true;
};

struct GCAttachment {
  std::string container_id;
  std::string ifname;
};

struct VersionInfo {
  std::string cni_version;
  std::vector<std::string> supported_versions;
};

class Client {
public:
  explicit Client(ClientOptions opts = {}) : opts_(std::move(opts)), cache_(opts_.cache_dir) {}

  // Runs ADD on each plugin in order, each getting the previous result as
  // prevResult; caches and returns the final result in the list's version. On
  // failure, see ClientOptions::del_after_failed_add.
  json add(const NetworkConfigList& list, const RuntimeConf& rt);
  // Runs DEL on each plugin in reverse order with the cached result, then drops
  // the cache entry. Idempotent: a missing cache entry or netns is not an error.
  void del(const NetworkConfigList& list, const RuntimeConf& rt);
  // Runs CHECK with the cached result (needs cniVersion >= 0.4.0 and an entry).
  void check(const NetworkConfigList& list, const RuntimeConf& rt);
  // STATUS on each plugin (a no-op below 1.1.0, as in libcni).
  void status(const NetworkConfigList& list);
  // DELs cached attachments of this network that are not in `valid`, then (1.1.0+)
  // sends GC with cni.dev/valid-attachments to each plugin. Errors are collected
  // and thrown together after every step ran.
  void gc(const NetworkConfigList& list, const std::vector<GCAttachment>& valid);
  // VERSION of one plugin type.
  VersionInfo plugin_version(const std::string& type);
  // Every plugin of the list exists and supports the list's cniVersion.
  void validate(const NetworkConfigList& list);

  // The cached result (converted to the list's version), or null.
  json cached_result(const NetworkConfigList& list, const RuntimeConf& rt) const;
  const ResultCache& cache() const { return cache_; }
  const ClientOptions& options() const { return opts_; }

  // The exact stdin a plugin gets (exposed for tests): name, cniVersion,
  // prevResult, and runtimeConfig from the capabilities the plugin declares.
  static json plugin_config(const NetworkConfigList& list, const PluginConf& p, const json& prev_result,
                            const RuntimeConf* rt);

private:
  std::string exec(const NetworkConfigList& list, const PluginConf& p, const std::string& command,
                   const json& prev_result, const RuntimeConf* rt);
  ClientOptions opts_;
  ResultCache cache_;
};

} // namespace berth::cni
