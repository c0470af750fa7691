#include "cni/lib/client.hpp"

#include <fmt/ranges.h>

#include "common/error.hpp"

namespace berth::cni {

namespace {

std::string describe(const PluginConf& p) {
  std::string name = p.raw.value("name", "");
  return name.empty() ? fmt::format("type=\"{}\"", p.type) : fmt::format("type=\"{}\" name=\"{}\"", p.type, name);
}

void validate_runtime(const NetworkConfigList& list, const RuntimeConf& rt) {
  validate_network_name(list.name);
  validate_container_id(rt.container_id);
  validate_interface_name(rt.ifname);
}

json parse_result(const std::string& out, const std::string& what, const std::string& version) {
  json r = json::parse(out, nullptr, false);
  if (r.is_discarded() || !r.is_object())
    fail("{}: plugin printed no valid result object: {}", what, out.substr(0, 200));
  return with_context(what, [&] { return convert_result(r, version); });
}

} // namespace

json Client::plugin_config(const NetworkConfigList& list, const PluginConf& p, const json& prev_result,
                           const RuntimeConf* rt) {
  json conf = p.raw;
  conf["name"] = list.name;
  conf["cniVersion"] = list.cni_version;
  if (!prev_result.is_null()) conf["prevResult"] = prev_result;
  else conf.erase("prevResult");
  if (rt) {
    json rc = json::object();
    for (const auto& [cap, on] : p.capabilities) {
      if (!on) continue;
      if (auto it = rt->capability_args.find(cap); it != rt->capability_args.end()) rc[cap] = *it;
    }
    if (!rc.empty()) conf["runtimeConfig"] = std::move(rc);
  }
  return conf;
}

std::string Client::exec(const NetworkConfigList& list, const PluginConf& p, const std::string& command,
                         const json& prev_result, const RuntimeConf* rt) {
  std::string path = find_plugin(p.type, opts_.bin_dirs);
  PluginInvocation inv;
  inv.command = command;
  if (rt) {
    inv.container_id = rt->container_id;
    inv.netns = rt->netns;
    inv.ifname = rt->ifname;
    inv.args = rt->args;
  }
  inv.path = opts_.bin_dirs;
  json conf = plugin_config(list, p, prev_result, rt);
  return run_plugin(path, inv, conf.dump(), opts_.timeout, opts_.pass_plugin_stderr);
}

json Client::add(const NetworkConfigList& list, const RuntimeConf& rt) {
  validate_runtime(list, rt);
  json result;
  try {
    for (const auto& p : list.plugins) {
      std::string what = fmt::format("plugin {} failed (add)", describe(p));
      std::string out = with_context(what, [&] { return exec(list, p, "ADD", result, &rt); });
      result = parse_result(out, what, list.cni_version);
    }
  } catch (const Error&) {
    if (opts_.del_after_failed_add) {
      for (auto it = list.plugins.rbegin(); it != list.plugins.rend(); ++it) {
        try {
          exec(list, *it, "DEL", nullptr, &rt);
        } catch (const Error&) {
          // The ADD error is the one to report.
        }
      }
    }
    throw;
  }
  if (result.is_null()) result = json{{"cniVersion", list.cni_version}};
  CachedAttachment a{list.name, rt.container_id, rt.ifname, rt.netns, list.bytes, rt.args, rt.capability_args, result};
  with_context(fmt::format("failed to set network \"{}\" cached result", list.name), [&] { cache_.put(a); });
  return result;
}

json Client::cached_result(const NetworkConfigList& list, const RuntimeConf& rt) const {
  auto a = cache_.get(list.name, rt.container_id, rt.ifname);
  if (!a || a->result.is_null()) return nullptr;
  return convert_result(a->result, list.cni_version);
}

void Client::del(const NetworkConfigList& list, const RuntimeConf& rt) {
  validate_runtime(list, rt);
  json cached;
  if (version_at_least(list.cni_version, "0.4.0")) {
    try {
      cached = cached_result(list, rt);
    } catch (const Error&) {
      // An unreadable entry must not block the delete (libcni drops it too).
      cache_.remove(list.name, rt.container_id, rt.ifname);
    }
  }
  for (auto it = list.plugins.rbegin(); it != list.plugins.rend(); ++it)
    with_context(fmt::format("plugin {} failed (delete)", describe(*it)), [&] { exec(list, *it, "DEL", cached, &rt); });
  cache_.remove(list.name, rt.container_id, rt.ifname);
}

void Client::check(const NetworkConfigList& list, const RuntimeConf& rt) {
  validate_runtime(list, rt);
  if (!version_at_least(list.cni_version, "0.4.0"))
    fail("configuration version \"{}\" does not support the CHECK command", list.cni_version);
  if (list.disable_check) return;
  json cached = cached_result(list, rt);
  if (cached.is_null())
    fail("failed to get network \"{}\" cached result for container {} interface {}", list.name, rt.container_id,
         rt.ifname);
  for (const auto& p : list.plugins)
    with_context(fmt::format("plugin {} failed (check)", describe(p)), [&] { exec(list, p, "CHECK", cached, &rt); });
}

void Client::status(const NetworkConfigList& list) {
  if (!version_at_least(list.cni_version, "1.1.0")) return;
  for (const auto& p : list.plugins)
    with_context(fmt::format("plugin {} failed (status)", describe(p)), [&] { exec(list, p, "STATUS", nullptr, nullptr); });
}

void Client::gc(const NetworkConfigList& list, const std::vector<GCAttachment>& valid) {
  if (list.disable_gc) return;
  std::vector<std::string> errors;
  for (const auto& a : cache_.list(list.name)) {
    bool keep = false;
    for (const auto& v : valid)
      if (v.container_id == a.container_id && v.ifname == a.ifname) keep = true;
    if (keep) continue;
    RuntimeConf rt{a.container_id, a.netns, a.ifname, a.cni_args, a.capability_args};
    try {
      del(list, rt);
    } catch (const Error& e) {
      errors.push_back(fmt::format("failed to delete stale attachment {} {}: {}", a.container_id, a.ifname, e.what()));
    }
  }
  if (version_at_least(list.cni_version, "1.1.0")) {
    json attachments = json::array();
    for (const auto& v : valid) attachments.push_back({{"containerID", v.container_id}, {"ifname", v.ifname}});
    for (const auto& p : list.plugins) {
      PluginConf with = p;
      with.raw["cni.dev/valid-attachments"] = attachments;
      with.raw["cni.dev/attachments"] = attachments; // the spec's original spelling (libcni sends both)
      try {
        exec(list, with, "GC", nullptr, nullptr);
      } catch (const Error& e) {
        errors.push_back(fmt::format("failed to GC plugin {}: {}", describe(p), e.what()));
      }
    }
  }
  if (!errors.empty()) fail("gc of network \"{}\": {}", list.name, fmt::join(errors, "; "));
}

VersionInfo Client::plugin_version(const std::string& type) {
  std::string path = find_plugin(type, opts_.bin_dirs);
  PluginInvocation inv;
  inv.command = "VERSION";
  inv.path = opts_.bin_dirs;
  json req = {{"cniVersion", kLatestVersion}};
  std::string out = run_plugin(path, inv, req.dump(), opts_.timeout, opts_.pass_plugin_stderr);
  json j = json::parse(out, nullptr, false);
  VersionInfo v;
  if (j.is_discarded() || !j.is_object()) fail("{} VERSION: not a JSON object: {}", path, out.substr(0, 200));
  v.cni_version = j.value("cniVersion", "");
  if (auto it = j.find("supportedVersions"); it != j.end() && it->is_array()) {
    for (const auto& s : *it)
      if (s.is_string()) v.supported_versions.push_back(s.get<std::string>());
  } else {
    // A 0.1.0/0.2.0 plugin answers with no list: it knows those two.
    v.supported_versions = {"0.1.0", "0.2.0"};
  }
  return v;
}

void Client::validate(const NetworkConfigList& list) {
  for (const auto& p : list.plugins) {
    with_context(fmt::format("{}: plugin {}", list.origin, describe(p)), [&] {
      VersionInfo v = plugin_version(p.type);
      bool ok = false;
      for (const auto& s : v.supported_versions) ok = ok || s == list.cni_version;
      if (!ok)
        fail("does not support cniVersion {} (supports {})", list.cni_version, fmt::join(v.supported_versions, ", "));
    });
  }
}

} // namespace berth::cni
