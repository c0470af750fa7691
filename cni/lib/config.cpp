#include "cni/lib/config.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>

#include <algorithm>

#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::cni {

namespace {

json parse_json(std::string_view bytes, const std::string& origin) {
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded()) fail("{}: not valid JSON", origin);
  if (!j.is_object()) fail("{}: expected a JSON object, got {}", origin, json_type_name(j));
  return j;
}

std::string parse_version_field(const JsonView& v) {
  std::string ver = v.as_string();
  if (!is_supported_version(ver))
    v.bad(fmt::format("unsupported version \"{}\" (supported: 0.1.0 to {})", ver, kLatestVersion));
  return ver;
}

PluginConf parse_plugin(const JsonView& v) {
  v.expect_object();
  PluginConf p;
  auto type = v["type"];
  if (!type.present()) {
    constexpr std::string_view msg = "missing \"type\" (the plugin binary's name)";
    if (v.path().empty()) fail("{}", msg); // a .conf: the plugin is the whole document
    v.bad(msg);
  }
  p.type = type.as_string();
  if (p.type.empty() || p.type.find('/') != std::string::npos || p.type == "." || p.type == "..")
    type.bad(fmt::format("\"{}\" is not a plugin name", p.type));
  v["capabilities"].each_member([&](const std::string& k, const JsonView& val) { p.capabilities[k] = val.as_bool(); });
  p.raw = v.raw();
  return p;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool valid_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

} // namespace

void validate_network_name(const std::string& name) {
  if (name.empty()) fail("missing network name");
  if (!std::isalnum(static_cast<unsigned char>(name[0])) || !std::all_of(name.begin(), name.end(), valid_name_char))
    fail("invalid network name \"{}\": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*", name);
}

void validate_container_id(const std::string& id) {
  if (id.empty()) fail("missing container ID");
  if (!std::isalnum(static_cast<unsigned char>(id[0])) || !std::all_of(id.begin(), id.end(), valid_name_char))
    fail("invalid container ID \"{}\": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*", id);
}

void validate_interface_name(const std::string& name) {
  if (name.empty()) fail("missing interface name");
  if (name.size() > 15) fail("invalid interface name \"{}\": longer than 15 characters", name);
  if (name == "." || name == "..") fail("invalid interface name \"{}\"", name);
  for (char c : name)
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)))
      fail("invalid interface name \"{}\": contains '{}'", name, c);
}

NetworkConfigList parse_conflist(std::string_view bytes, const std::string& origin) {
  json j = parse_json(bytes, origin);
  return with_context(origin, [&] {
    JsonView root(j, "");
    NetworkConfigList l;
    auto name = root["name"];
    if (!name.present()) name.bad("missing network name");
    l.name = name.as_string();
    with_context("name", [&] { validate_network_name(l.name); });
    auto ver = root["cniVersion"];
    if (!ver.present()) ver.bad("missing (e.g. \"1.0.0\")");
    l.cni_version = parse_version_field(ver);
    l.disable_check = root.opt_bool("disableCheck").value_or(false);
    l.disable_gc = root.opt_bool("disableGC").value_or(false);
    auto plugins = root["plugins"];
    if (!plugins.present() || !plugins.raw().is_array() || plugins.size() == 0)
      plugins.bad("expected a non-empty array of plugin configurations");
    plugins.each([&](const JsonView& p) { l.plugins.push_back(parse_plugin(p)); });
    l.bytes = std::string(bytes);
    l.origin = origin;
    return l;
  });
}

NetworkConfigList parse_conf(std::string_view bytes, const std::string& origin) {
  json j = parse_json(bytes, origin);
  return with_context(origin, [&] {
    JsonView root(j, "");
    if (root["plugins"].present()) fail("has \"plugins\": name the file .conflist");
    NetworkConfigList l;
    auto name = root["name"];
    if (!name.present()) name.bad("missing network name");
    l.name = name.as_string();
    with_context("name", [&] { validate_network_name(l.name); });
    auto ver = root["cniVersion"];
    l.cni_version = ver.present() ? parse_version_field(ver) : "0.1.0";
    l.plugins.push_back(parse_plugin(root));
    // libcni's ConfListFromConf: the list is the single plugin wrapped.
    json list = {{"name", l.name}, {"cniVersion", l.cni_version}, {"plugins", json::array({j})}};
    l.bytes = list.dump();
    l.origin = origin;
    return l;
  });
}

NetworkConfigList load_config_file(const std::string& path) {
  std::string bytes = with_context("read network configuration", [&] { return read_file(path); });
  if (ends_with(path, ".conflist")) return parse_conflist(bytes, path);
  return parse_conf(bytes, path);
}

ConfigDir::ConfigDir(std::string dir) : dir_(std::move(dir)) { load(); }

bool ConfigDir::drain_events() {
  bool any = false, watch_gone = false;
  alignas(inotify_event) char buf[4096];
  for (;;) {
    ssize_t n = ::read(watch_.get(), buf, sizeof buf);
    if (n <= 0) break;
    any = true;
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      auto* ev = reinterpret_cast<inotify_event*>(buf + off);
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) watch_gone = true;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  // The directory was removed or moved away: watch it afresh (or re-read each time
  // until it is back), else a recreated directory would never be seen again.
  if (watch_gone) watch_.reset();
  return any;
}

void ConfigDir::load() {
  if (!watch_) {
    UniqueFd fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    constexpr uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                              IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    if (fd && inotify_add_watch(fd.get(), dir_.c_str(), mask) >= 0) watch_ = std::move(fd);
  }
  networks_.clear();
  errors_.clear();
  std::vector<std::string> files;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.empty() || n[0] == '.') continue;
      if (ends_with(n, ".conflist") || ends_with(n, ".conf") || ends_with(n, ".json")) files.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    try {
      auto l = load_config_file(path_join(dir_, f));
      bool dup = std::any_of(networks_.begin(), networks_.end(), [&](const auto& x) { return x.name == l.name; });
      if (dup) {
        errors_.push_back(fmt::format("{}: network \"{}\" is already defined by an earlier file", l.origin, l.name));
        continue;
      }
      networks_.push_back(std::move(l));
    } catch (const Error& e) {
      errors_.push_back(e.what());
    }
  }
}

bool ConfigDir::reload() {
  // Without a watch (directory missing at load time) every reload re-reads.
  if (watch_ && !drain_events()) return false;
  load();
  return true;
}

const NetworkConfigList& ConfigDir::default_network() const {
  if (networks_.empty()) {
    std::string why = errors_.empty() ? "no .conflist/.conf/.json files" : fmt::format("{}", fmt::join(errors_, "; "));
    fail("no valid network configuration in {}: {}", dir_, why);
  }
  return networks_.front();
}

const NetworkConfigList& ConfigDir::network(const std::string& name) const {
  for (const auto& n : networks_)
    if (n.name == name) return n;
  std::vector<std::string> names;
  for (const auto& n : networks_) names.push_back(n.name);
  std::string msg = fmt::format("network \"{}\" not found in {} (valid networks: {})", name, dir_,
                                names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")));
  if (!errors_.empty()) msg += fmt::format("; skipped files: {}", fmt::join(errors_, "; "));
  fail("{}", msg);
}

} // namespace berth::cni
