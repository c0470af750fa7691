#include "runtime/lib/spec.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/cgroup.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace berth {

namespace {

struct NamespaceName {
  const char* type;
  const char* proc;
  int flag;
};
constexpr NamespaceName kNamespaces[] = {
    {"pid", "pid", CLONE_NEWPID},       {"network", "net", CLONE_NEWNET},
    {"mount", "mnt", CLONE_NEWNS},      {"ipc", "ipc", CLONE_NEWIPC},
    {"uts", "uts", CLONE_NEWUTS},       {"user", "user", CLONE_NEWUSER},
    {"cgroup", "cgroup", CLONE_NEWCGROUP}, {"time", "time", CLONE_NEWTIME},
};

std::vector<IdMapping> parse_id_mappings(const JsonView& v) {
  std::vector<IdMapping> out;
  v.each([&](const JsonView& m) {
    m.expect_object();
    IdMapping map{m["containerID"].as_u32(), m["hostID"].as_u32(), m["size"].as_u32()};
    if (map.size == 0) m["size"].bad("must be greater than 0");
    if (uint64_t(map.container_id) + map.size > (1ull << 32) || uint64_t(map.host_id) + map.size > (1ull << 32))
      m.bad("mapping range overflows 32 bits");
    for (auto& other : out) {
      auto overlap = [](uint32_t a, uint32_t b, uint32_t size_a, uint32_t size_b) {
        return uint64_t(a) < uint64_t(b) + size_b && uint64_t(b) < uint64_t(a) + size_a;
      };
      if (overlap(map.container_id, other.container_id, map.size, other.size))
        m["containerID"].bad("range overlaps an earlier mapping's containerID range");
      if (overlap(map.host_id, other.host_id, map.size, other.size))
        m["hostID"].bad("range overlaps an earlier mapping's hostID range");
    }
    out.push_back(map);
  });
  return out;
}

unsigned long parse_propagation(const JsonView& v) {
  std::string s = v.as_string();
  static const std::pair<const char*, unsigned long> table[] = {
      {"shared", MS_SHARED},   {"rshared", MS_SHARED | MS_REC},     {"slave", MS_SLAVE},
      {"rslave", MS_SLAVE | MS_REC}, {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
  for (auto& [name, flag] : table)
    if (s == name) return flag;
  v.bad(fmt::format("unknown propagation \"{}\"", s));
}

void parse_linux(const JsonView& l, Spec& s) {
  l.expect_object();
  std::set<int> seen;
  l["namespaces"].each([&](const JsonView& n) {
    n.expect_object();
    std::string type = n["type"].as_string();
    int flag = namespace_flag(type);
    if (!flag) n["type"].bad(fmt::format("unknown namespace type \"{}\"", type));
    if (!seen.insert(flag).second) n["type"].bad(fmt::format("namespace \"{}\" listed twice", type));
    Namespace ns{flag, type, n.opt_string("path").value_or("")};
    if (!ns.path.empty() && ns.path[0] != '/')
      n["path"].bad(fmt::format("\"{}\" must be an absolute path", ns.path));
    s.namespaces.push_back(std::move(ns));
  });
  s.uid_mappings = parse_id_mappings(l["uidMappings"]);
  s.gid_mappings = parse_id_mappings(l["gidMappings"]);
  l["timeOffsets"].each_member([&](const std::string& clock, const JsonView& v) {
    if (clock != "monotonic" && clock != "boottime") v.bad("unknown clock (expected monotonic or boottime)");
    s.time_offsets[clock] = v.opt_int("secs").value_or(0);
    auto nanos = v.opt_uint("nanosecs").value_or(0);
    if (nanos >= 1000000000) v["nanosecs"].bad("must be below 1000000000");
    s.time_offsets_nanos[clock] = static_cast<uint32_t>(nanos);
  });
  l["sysctl"].each_member([&](const std::string& key, const JsonView& v) {
    std::string dotted = key; // "net/ipv4/ip_forward" is accepted as runc does
    std::replace(dotted.begin(), dotted.end(), '/', '.');
    s.sysctl[dotted] = v.as_string();
  });
  s.cgroups_path = l.opt_string("cgroupsPath").value_or("");
  if (auto r = l["resources"]; r.present()) {
    r.expect_object();
    s.resources = r.raw();
    validate_resources(s.resources); // errors name the field (linux.resources.memory.limit)
  }
  s.devices = parse_devices(l["devices"]);
  s.seccomp = seccomp::parse(l["seccomp"]);
  if (auto p = l["rootfsPropagation"]; p.present()) s.rootfs_propagation = parse_propagation(p);
  s.masked_paths = l.string_list("maskedPaths");
  s.readonly_paths = l.string_list("readonlyPaths");
  for (auto* list : {&s.masked_paths, &s.readonly_paths})
    for (auto& path : *list)
      if (path.empty() || path[0] != '/')
        fail("linux.{}: \"{}\" must be an absolute path", list == &s.masked_paths ? "maskedPaths" : "readonlyPaths",
             path);
  s.mount_label = l.opt_string("mountLabel").value_or("");
  s.personality = parse_personality(l["personality"]);
  if (l["intelRdt"].present()) log::warn("linux.intelRdt is not supported on this host; ignored");
}

// Cross-field rules, as runc's validator applies them.
void validate(Spec& s) {
  const Namespace* user = s.find_namespace(CLONE_NEWUSER);
  if (user && user->path.empty() && (s.uid_mappings.empty() || s.gid_mappings.empty()))
    fail("linux.uidMappings: a new user namespace needs both uidMappings and gidMappings");
  if (!user && (!s.uid_mappings.empty() || !s.gid_mappings.empty()))
    fail("linux.uidMappings: uid/gid mappings require a user namespace (linux.namespaces has no \"user\")");
  if (!s.hostname.empty() && !s.has_namespace(CLONE_NEWUTS))
    fail("hostname: setting the hostname needs a private UTS namespace");
  if (!s.domainname.empty() && !s.has_namespace(CLONE_NEWUTS))
    fail("domainname: setting the domainname needs a private UTS namespace");
  if (!s.time_offsets.empty()) {
    auto* t = s.find_namespace(CLONE_NEWTIME);
    if (!t || !t->path.empty()) fail("linux.timeOffsets: time offsets need a new time namespace");
  }
  for (auto& [key, value] : s.sysctl) {
    bool net = starts_with(key, "net.");
    bool ipc = starts_with(key, "kernel.msg") || starts_with(key, "kernel.sem") || starts_with(key, "kernel.shm") ||
               starts_with(key, "fs.mqueue.");
    bool uts = key == "kernel.hostname" || key == "kernel.domainname";
    if (net && !s.has_namespace(CLONE_NEWNET))
      fail("linux.sysctl: \"{}\" is not allowed in the host's network namespace", key);
    if (ipc && !s.has_namespace(CLONE_NEWIPC))
      fail("linux.sysctl: \"{}\" is not allowed in the host's IPC namespace", key);
    if (uts) fail("linux.sysctl: \"{}\" must be set with the hostname/domainname fields", key);
    if (!net && !ipc) fail("linux.sysctl: \"{}\" is not namespaced and cannot be set in a container", key);
    if (key.find("..") != std::string::npos || key.empty() || key.front() == '.' || key.back() == '.')
      fail("linux.sysctl: invalid key \"{}\"", key);
  }
  if (s.process.terminal && s.process.console_size && (s.process.console_size->first == 0))
    log::debug("process.consoleSize has zero height");
}

} // namespace

void parse_process(const JsonView& p, ProcessSpec& out) {
  p.expect_object();
  out.terminal = p.opt_bool("terminal").value_or(false);
  if (auto cs = p["consoleSize"]; cs.present())
    out.console_size = std::make_pair(cs["height"].as_u32(), cs["width"].as_u32());
  auto user = p["user"];
  if (user.present()) {
    user.expect_object();
    if (auto u = user["uid"]; u.present()) out.uid = u.as_u32();
    if (auto g = user["gid"]; g.present()) out.gid = g.as_u32();
    if (auto m = user["umask"]; m.present()) {
      auto v = m.as_u32();
      if (v > 0777) m.bad(fmt::format("{:o} is not a valid umask", v));
      out.umask = v;
    }
    user["additionalGids"].each([&](const JsonView& g) { out.additional_gids.push_back(g.as_u32()); });
    if (user["username"].present()) user["username"].as_string(); // Windows-only field; type-checked
  }
  out.args = p.string_list("args");
  if (out.args.empty()) p["args"].bad("must not be empty");
  if (out.args[0].empty()) p["args"].at(0).bad("must not be empty");
  out.env = p.string_list("env");
  out.cwd = p.opt_string("cwd").value_or("/");
  if (out.cwd.empty() || out.cwd[0] != '/') p["cwd"].bad(fmt::format("\"{}\" must be an absolute path", out.cwd));
  out.capabilities = parse_capabilities(p["capabilities"]);
  out.rlimits = parse_rlimits(p["rlimits"]);
  out.no_new_privileges = p.opt_bool("noNewPrivileges").value_or(false);
  out.apparmor_profile = p.opt_string("apparmorProfile").value_or("");
  out.selinux_label = p.opt_string("selinuxLabel").value_or("");
  if (auto o = p["oomScoreAdj"]; o.present()) {
    auto v = o.as_int();
    if (v < -1000 || v > 1000) o.bad(fmt::format("{} is outside -1000..1000", v));
    out.oom_score_adj = static_cast<int>(v);
  }
  out.scheduler = parse_scheduler(p["scheduler"]);
  out.io_priority = parse_io_priority(p["ioPriority"]);
}

int namespace_flag(std::string_view type) {
  for (auto& n : kNamespaces)
    if (type == n.type) return n.flag;
  return 0;
}

const char* namespace_proc_name(int flag) {
  for (auto& n : kNamespaces)
    if (flag == n.flag) return n.proc;
  return "";
}

bool Spec::has_namespace(int flag) const { return find_namespace(flag) != nullptr; }

const Namespace* Spec::find_namespace(int flag) const {
  for (auto& n : namespaces)
    if (n.flag == flag) return &n;
  return nullptr;
}

Spec parse_spec(const std::string& text, const std::string& bundle) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("invalid JSON: {}", e.what());
  }
  JsonView root(doc, "");
  if (!doc.is_object()) fail("expected a JSON object at the top level, got {}", json_type_name(doc));
  Spec s;
  s.bundle = bundle;
  s.oci_version = root.opt_string("ociVersion").value_or("");
  s.raw = doc;
  auto r = root["root"];
  if (!r.present()) fail("root: missing (root.path is required)");
  r.expect_object();
  std::string path = r["path"].present() ? r["path"].as_string() : "";
  if (path.empty()) fail("root.path: missing or empty");
  s.root_path = path[0] == '/' ? path : path_join(bundle, path);
  struct stat st;
  if (::stat(s.root_path.c_str(), &st) < 0) fail_errno("root.path: rootfs {}", s.root_path);
  if (!S_ISDIR(st.st_mode)) fail("root.path: rootfs {} is not a directory", s.root_path);
  s.root_readonly = r.opt_bool("readonly").value_or(false);
  s.hostname = root.opt_string("hostname").value_or("");
  s.domainname = root.opt_string("domainname").value_or("");
  auto p = root["process"];
  if (!p.present()) fail("process: missing");
  parse_process(p, s.process);
  s.mounts = parse_mounts(root["mounts"], bundle);
  s.hooks = parse_hooks(root["hooks"]);
  root["annotations"].each_member([&](const std::string& k, const JsonView& v) { s.annotations[k] = v.as_string(); });
  if (auto l = root["linux"]; l.present()) parse_linux(l, s);
  validate(s);
  return s;
}

Spec load_spec(const std::string& bundle) {
  std::string path = path_join(bundle, "config.json");
  std::string text;
  try {
    text = read_file(path);
  } catch (Error& e) {
    throw e.wrap("read the container's configuration");
  }
  Spec s = with_context("config.json", [&] { return parse_spec(text, bundle); });
  s.source_text = std::move(text);
  return s;
}

} // namespace berth
