// Network configuration (CNI spec section 1): .conflist files, and single-plugin
// .conf/.json files that libcni wraps into a one-plugin list. Every validation
// error names the file and the field.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cni/lib/version.hpp"
#include "common/fd.hpp"

namespace berth::cni {

struct PluginConf {
  std::string type;
  std::map<std::string, bool> capabilities; // "capabilities": {"portMappings": true}
  json raw;                                 // the plugin's object as written
};

struct NetworkConfigList {
  std::string name;
  std::string cni_version;
  bool disable_check = false;
  bool disable_gc = false;
  std::vector<PluginConf> plugins;
  std::string bytes;  // the file's bytes (cached with each attachment, as libcni does)
  std::string origin; // file path, or "<inline>"
};

// Parses a .conflist document. origin names it in errors.
NetworkConfigList parse_conflist(std::string_view bytes, const std::string& origin);
// Parses a single-plugin .conf/.json document into a one-plugin list.
NetworkConfigList parse_conf(std::string_view bytes, const std::string& origin);
// By extension: .conflist → list, .conf/.json → single plugin.
NetworkConfigList load_config_file(const std::string& path);

// Checks a network or interface name the way libcni's utils do.
void validate_network_name(const std::string& name);
void validate_container_id(const std::string& id);
void validate_interface_name(const std::string& name);

// A configuration directory: files in lexical order, the first valid one is the
// default network. Invalid files are skipped and reported in errors(). reload()
// re-reads only when inotify saw a change (or always, without inotify).
class ConfigDir {
public:
  explicit ConfigDir(std::string dir);
  const std::string& dir() const { return dir_; }
  // Re-reads the directory if it changed since the last load; true if it did.
  bool reload();
  // The default network: the first valid file in lexical order; fails if none.
  const NetworkConfigList& default_network() const;
  // The network with that name; fails with the list of known names if absent.
  const NetworkConfigList& network(const std::string& name) const;
  const std::vector<NetworkConfigList>& networks() const { return networks_; }
  // "file: reason" for each file that was skipped.
  const std::vector<std::string>& errors() const { return errors_; }
  // inotify fd to poll for changes (-1 when the directory does not exist yet).
  int watch_fd() const { return watch_.get(); }

private:
  void load();
  bool drain_events();
  std::string dir_;
  UniqueFd watch_;
  std::vector<NetworkConfigList> networks_;
  std::vector<std::string> errors_;
};

} // namespace berth::cni
