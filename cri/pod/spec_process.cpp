// The "process" object of a container's config.json: args, env, cwd, user and groups,
// capabilities and oom_score_adj, with containerd 1.7's CRI semantics (pkg/cri/opts and
// oci/spec_opts.go).
#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_map>

#include "cri/pod/spec_internal.hpp"

namespace berth::cri::spec {
namespace {

using runtime::v1::ContainerConfig;
using runtime::v1::LinuxContainerSecurityContext;

constexpr std::string_view kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// execve(2) refuses a single argument or variable longer than MAX_ARG_STRLEN (32 pages),
// and all of them beyond a quarter of the 8 MiB default stack: fail at create, naming the
// field, rather than at start with E2BIG.
constexpr size_t kMaxArgLength = 128 * 1024;
constexpr size_t kMaxExecBytes = 2 * 1024 * 1024;
constexpr size_t kMaxGroups = 65536;  // NGROUPS_MAX
constexpr int64_t kMaxId = INT32_MAX;  // runc's (and containerd's) limit for uid and gid
const std::string kRoot = "0";

// Capability numbers are the kernel's (linux/capability.h), names as runc spells them.
constexpr std::array<std::string_view, 41> kCapabilities = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE"};

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

bool is_all(std::string_view name) {
  return name.size() == 3 && upper(name[0]) == 'A' && upper(name[1]) == 'L' && upper(name[2]) == 'L';
}

// ---- args and env ------------------------------------------------------------------------------

void check_exec_string(std::string_view value, std::string_view field, size_t& total) {
  if (value.find('\0') != std::string_view::npos) invalid("{}: must not contain a NUL byte", field);
  if (value.size() > kMaxArgLength)
    invalid("{}: {} bytes is longer than the kernel's limit of {} for one argument", field, value.size(),
            kMaxArgLength);
  total += value.size() + 1;
  if (total > kMaxExecBytes)
    invalid("{}: the command and environment exceed {} bytes, more than exec accepts", field, kMaxExecBytes);
}

// containerd's WithProcessArgs (from moby): the request's command replaces the image's
// entrypoint and then its cmd too, unless args are given; args alone replace the cmd.
std::vector<std::string> process_args(const ContainerConfig& c, const ImageConfig& image, size_t& total) {
  std::vector<std::string> command(c.command().begin(), c.command().end());
  std::vector<std::string> args(c.args().begin(), c.args().end());
  for (size_t i = 0; i < command.size(); i++) check_exec_string(command[i], indexed("command", i), total);
  for (size_t i = 0; i < args.size(); i++) check_exec_string(args[i], indexed("args", i), total);
  if (command.empty()) {
    if (args.empty()) {
      args = image.cmd;
      for (size_t i = 0; i < args.size(); i++) check_exec_string(args[i], indexed("image config Cmd", i), total);
    }
    // ENTRYPOINT [""] is Docker's way of clearing an inherited entrypoint.
    if (!(image.entrypoint.size() == 1 && image.entrypoint[0].empty())) {
      command = image.entrypoint;
      for (size_t i = 0; i < command.size(); i++)
        check_exec_string(command[i], indexed("image config Entrypoint", i), total);
    }
  }
  command.insert(command.end(), args.begin(), args.end());
  if (command.empty()) invalid("command: no command specified, and the image has no Entrypoint or Cmd");
  if (command[0].empty()) invalid("command: the program (the first word) must not be empty");
  return command;
}

// containerd's replaceOrAppendEnvValues as runc then applies it: a later KEY=value
// replaces an earlier KEY in place (runc sets them in order, so the last one wins); a
// bare KEY removes it. Linear: a hostile request may bring thousands.
void replace_or_append(std::vector<std::string>& env, const std::vector<std::string>& overrides) {
  auto key_of = [](const std::string& e) { return e.substr(0, e.find('=')); };
  std::unordered_map<std::string, size_t> position;
  for (size_t i = 0; i < env.size(); i++) position.emplace(key_of(env[i]), i);
  std::vector<bool> removed(env.size(), false);
  for (const auto& value : overrides) {
    bool unset = value.find('=') == std::string::npos;
    auto [it, added] = position.try_emplace(key_of(value), env.size());
    if (added && unset) {
      position.erase(it);
    } else if (added) {
      env.push_back(value);
      removed.push_back(false);
    } else {
      removed[it->second] = unset;
      if (!unset) env[it->second] = value;
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < env.size(); i++) {
    if (removed[i]) continue;
    if (kept != i) env[kept] = std::move(env[i]);
    kept++;
  }
  env.resize(kept);
}

std::vector<std::string> process_env(const ProcessInput& in, size_t& total) {
  const auto& envs = in.config.envs();
  if (static_cast<size_t>(envs.size()) > in.max_env)
    invalid("envs: {} variables, at most {} are accepted", envs.size(), in.max_env);
  if (in.image.env.size() > in.max_env)
    invalid("image config Env: {} variables, at most {} are accepted", in.image.env.size(), in.max_env);
  std::vector<std::string> env{std::string(kDefaultPath)};
  if (in.config.tty()) env.emplace_back("TERM=xterm");
  std::string hostname = "HOSTNAME=" + in.hostname;
  check_exec_string(hostname, "hostname", total);
  replace_or_append(env, {hostname});
  std::vector<std::string> overrides;
  for (size_t i = 0; i < in.image.env.size(); i++) {
    check_exec_string(in.image.env[i], indexed("image config Env", i), total);
    overrides.push_back(in.image.env[i]);
  }
  for (int i = 0; i < envs.size(); i++) {
    const auto& kv = envs[i];
    std::string field = indexed("envs", static_cast<size_t>(i));
    if (kv.key().empty()) invalid("{}.key: must not be empty", field);
    if (kv.key().find('=') != std::string::npos) invalid("{}.key: \"{}\" must not contain '='", field, kv.key());
    check_exec_string(kv.key() + "=" + kv.value(), field, total);
    overrides.push_back(kv.key() + "=" + kv.value());
  }
  replace_or_append(env, overrides);
  if (env.size() > in.max_env) invalid("envs: {} variables in all, at most {} are accepted", env.size(), in.max_env);
  return env;
}

std::string process_cwd(const ContainerConfig& c, const ImageConfig& image) {
  if (!c.working_dir().empty()) return absolute_path(c.working_dir(), "working_dir");
  if (!image.working_dir.empty()) return absolute_path(image.working_dir, "image config WorkingDir");
  return "/";
}

// ---- user -------------------------------------------------------------------------------------

int64_t checked_id(const runtime::v1::Int64Value& v, std::string_view field) {
  if (v.value() < 0 || v.value() > kMaxId) invalid("{}: {} is out of range (0 to {})", field, v.value(), kMaxId);
  return v.value();
}

// containerd's generateUserString: username wins over uid; a group needs a user.
std::string user_string(const LinuxContainerSecurityContext& sc, std::string& field) {
  std::string user, group;
  if (sc.has_run_as_user()) {
    user = std::to_string(checked_id(sc.run_as_user(), "linux.security_context.run_as_user"));
    field = "linux.security_context.run_as_user";
  }
  if (!sc.run_as_username().empty()) {
    check_text(sc.run_as_username(), "linux.security_context.run_as_username", 256);
    if (sc.run_as_username().find(':') != std::string::npos)
      invalid("linux.security_context.run_as_username: \"{}\" must not contain ':'", sc.run_as_username());
    user = sc.run_as_username();
    field = "linux.security_context.run_as_username";
  }
  if (sc.has_run_as_group()) {
    group = std::to_string(checked_id(sc.run_as_group(), "linux.security_context.run_as_group"));
    if (user.empty())
      invalid("linux.security_context.run_as_group: group {} is set without run_as_user or run_as_username", group);
    user.append(":").append(group);
  }
  return user;
}

std::optional<uint32_t> numeric_id(std::string_view s) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > kMaxId) return std::nullopt;
  return v;
}

// Without the container's /etc/passwd only numbers can be resolved.
ResolvedUser resolve_numeric(const std::string& user) {
  auto colon = user.find(':');
  auto uid = numeric_id(std::string_view(user).substr(0, colon));
  std::optional<uint32_t> gid = 0;
  if (colon != std::string::npos) gid = numeric_id(std::string_view(user).substr(colon + 1));
  if (!uid || !gid) invalid("user \"{}\": names need the container's /etc/passwd and /etc/group", user);
  return ResolvedUser{*uid, *gid, {}, ""};
}

} // namespace

json resolve_process_user(const std::string& user, std::string_view field, const UserResolver& resolver,
                          const std::vector<int64_t>& supplemental, std::string_view supplemental_field,
                          bool strict_groups) {
  ResolvedUser resolved;
  try {
    resolved = resolver ? resolver(user) : resolve_numeric(user);
  } catch (Error& e) {
    throw e.wrap(field);  // the resolver names the user
  }
  if (supplemental.size() > kMaxGroups)
    invalid("{}: {} groups, at most {} are accepted", supplemental_field, supplemental.size(), kMaxGroups);
  // As containerd (since the additional-gids fix): the primary group is listed too,
  // then the image's groups of the user, then the requested ones; sorted, no repeats.
  std::set<uint32_t> gids{resolved.gid};
  if (!strict_groups) gids.insert(resolved.additional_gids.begin(), resolved.additional_gids.end());
  for (size_t i = 0; i < supplemental.size(); i++) {
    int64_t g = supplemental[i];
    if (g < 0 || g >= int64_t{UINT32_MAX})
      invalid("{}: {} is out of range (0 to {})", indexed(supplemental_field, i), g, UINT32_MAX - 1);
    gids.insert(static_cast<uint32_t>(g));
  }
  return json{{"uid", resolved.uid}, {"gid", resolved.gid}, {"additionalGids", std::vector<uint32_t>(gids.begin(), gids.end())}};
}

json build_process(const ProcessInput& in, const SpecOptions& opts) {
  const auto& sc = in.config.linux().security_context();
  size_t exec_bytes = 0;
  json p;
  p["terminal"] = in.config.tty();
  p["args"] = process_args(in.config, in.image, exec_bytes);
  p["env"] = process_env(in, exec_bytes);
  p["cwd"] = process_cwd(in.config, in.image);

  std::string field;
  std::string user = user_string(sc, field);
  if (user.empty()) {
    user = in.image.user;
    field = "image config User";
    check_text(user, field, 512);
  }
  // No user anywhere: root, whose groups containerd still looks up.
  const std::string& effective = user.empty() ? kRoot : user;
  std::vector<int64_t> groups(sc.supplemental_groups().begin(), sc.supplemental_groups().end());
  p["user"] = resolve_process_user(effective, field, in.resolve_user, groups, "linux.security_context.supplemental_groups",
                                   sc.supplemental_groups_policy() == runtime::v1::Strict);
  p["noNewPrivileges"] = sc.no_new_privs();
  if (in.config.linux().has_resources())
    p["oomScoreAdj"] = oom_score_adj(in.config.linux().resources().oom_score_adj(),
                                     "linux.resources.oom_score_adj", opts);
  return p;
}

// ---- capabilities ------------------------------------------------------------------------------

const std::vector<std::string>& default_capabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",  "CAP_FOWNER",           "CAP_MKNOD",
      "CAP_NET_RAW", "CAP_SETGID",      "CAP_SETUID",  "CAP_SETFCAP",          "CAP_SETPCAP",
      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"};
  return caps;
}

std::optional<int> capability_number(std::string_view name) {
  std::string up;
  for (char c : name) up += upper(c);
  if (up.rfind("CAP_", 0) != 0) up = "CAP_" + up;
  for (size_t i = 0; i < kCapabilities.size(); i++)
    if (kCapabilities[i] == up) return static_cast<int>(i);
  return std::nullopt;
}

std::string_view capability_name(int number) {
  return number >= 0 && static_cast<size_t>(number) < kCapabilities.size() ? kCapabilities[number] : "";
}

int last_known_capability() { return static_cast<int>(kCapabilities.size()) - 1; }

std::vector<std::string> container_capabilities(const LinuxContainerSecurityContext& sc,
                                                const std::vector<std::string>& all_caps) {
  uint64_t mask = 0;
  auto mask_of = [](const std::vector<std::string>& names) {
    uint64_t m = 0;
    for (const auto& n : names)
      if (auto c = capability_number(n)) m |= uint64_t{1} << *c;
    return m;
  };
  mask = mask_of(default_capabilities());
  if (sc.has_capabilities()) {
    const auto& caps = sc.capabilities();
    // containerd: ALL first, so that individual names still refine it ("add ALL, drop
    // CHOWN" is everything but CAP_CHOWN).
    if (std::any_of(caps.add_capabilities().begin(), caps.add_capabilities().end(), is_all)) mask = mask_of(all_caps);
    if (std::any_of(caps.drop_capabilities().begin(), caps.drop_capabilities().end(), is_all)) mask = 0;
    auto each = [](const auto& list, std::string_view field, auto&& apply) {
      for (int i = 0; i < list.size(); i++) {
        if (is_all(list[i])) continue;
        auto cap = capability_number(list[i]);
        if (!cap) invalid("{}: unknown capability \"{}\"", indexed(field, static_cast<size_t>(i)), list[i]);
        apply(uint64_t{1} << *cap);
      }
    };
    each(caps.add_capabilities(), "linux.security_context.capabilities.add_capabilities",
         [&](uint64_t bit) { mask |= bit; });
    each(caps.drop_capabilities(), "linux.security_context.capabilities.drop_capabilities",
         [&](uint64_t bit) { mask &= ~bit; });
    // containerd 1.7 clears ambient capabilities (kubernetes#56374); the names are
    // still checked so that a typo is not silently accepted.
    each(caps.add_ambient_capabilities(), "linux.security_context.capabilities.add_ambient_capabilities",
         [](uint64_t) {});
  }
  std::vector<std::string> out;
  for (int c = 0; c <= last_known_capability(); c++)
    if (mask & (uint64_t{1} << c)) out.emplace_back(capability_name(c));
  return out;
}

json capabilities_object(const std::vector<std::string>& caps) {
  return json{{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
}

int oom_score_adj(int64_t requested, std::string_view field, const SpecOptions& opts) {
  if (requested < -1000 || requested > 1000) invalid("{}: {} is outside -1000..1000", field, requested);
  int adj = static_cast<int>(requested);
  // containerd's restrictOOMScoreAdj: without CAP_SYS_RESOURCE the runtime cannot go
  // below its own value, so ask for no less.
  if (opts.restrict_oom_score_adj && opts.host.oom_score_adj) adj = std::max(adj, opts.host.oom_score_adj());
  return adj;
}

} // namespace berth::cri::spec
