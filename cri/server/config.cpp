#include "cri/server/config.hpp"

#include "berth_paths.h"  // BERTH_SYSCONFDIR: generated for the install prefix

#include <set>
#include <string_view>

#include <toml++/toml.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/registry_hosts.hpp"
#include "cri/server/metrics.hpp"

namespace berth::cri {

const char* const kDefaultConfigPath = BERTH_SYSCONFDIR "/berth/berthd.toml";

namespace {

// Reads one TOML table against a fixed set of keys: every getter marks its key as
// known, finish() rejects the rest, and every error names file, line and dotted key.
class TableReader {
public:
  TableReader(const toml::table& t, std::string prefix, const std::string& file)
      : t_(t), prefix_(std::move(prefix)), file_(file) {}

  std::optional<std::string> str(std::string_view key) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) bad(*n, key, "expected a string");
    return n->as_string()->get();
  }
  std::optional<bool> boolean(std::string_view key) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) bad(*n, key, "expected true or false");
    return n->as_boolean()->get();
  }
  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) bad(*n, key, "expected an integer");
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) bad(*n, key, fmt::format("{} is out of range {}..{}", v, min, max));
    return v;
  }
  std::optional<std::vector<std::string>> strings(std::string_view key) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_array()) bad(*n, key, "expected an array of strings");
    std::vector<std::string> out;
    for (const toml::node& e : *n->as_array()) {
      if (!e.is_string()) bad(e, key, "expected an array of strings");
      out.push_back(e.as_string()->get());
    }
    return out;
  }
  const toml::table* table(std::string_view key) {
    const toml::node* n = take(key);
    if (!n) return nullptr;
    if (!n->is_table()) bad(*n, key, "expected a table");
    return n->as_table();
  }
  // A node already taken, for errors about its value (not its type).
  [[noreturn]] void bad_value(std::string_view key, std::string_view what) const {
    bad(*t_.get(key), key, what);
  }
  void finish() const {
    for (auto&& [k, v] : t_)
      if (!known_.count(std::string(k.str()))) bad(v, k.str(), "unknown key");
  }
  std::string dotted(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

private:
  const toml::node* take(std::string_view key) {
    known_.insert(std::string(key));
    return t_.get(key);
  }
  [[noreturn]] void bad(const toml::node& n, std::string_view key, std::string_view what) const {
    fail("{}:{}: {}: {}", file_, n.source().begin.line, dotted(key), what);
  }

  const toml::table& t_;
  std::string prefix_;
  const std::string& file_;
  std::set<std::string> known_;
};

dlog::Level level_from(std::string_view s, const std::string& where) {
  auto l = dlog::parse_level(s);
  if (!l) fail("{}: \"{}\" is not a log level (debug, info, warn, error)", where, s);
  return *l;
}

dlog::Format format_from(std::string_view s, const std::string& where) {
  auto f = dlog::parse_format(s);
  if (!f) fail("{}: \"{}\" is not a log format (text, json)", where, s);
  return *f;
}

mode_t mode_from(std::string_view s, const std::string& where) {
  auto m = parse_uint(s, 8);
  if (!m || *m > 0777) fail("{}: \"{}\" is not an octal file mode like \"0660\"", where, s);
  return static_cast<mode_t>(*m);
}

void check_platform(std::string_view p, const std::string& where) {
  auto parts = split(p, '/', false);
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
    fail("{}: \"{}\" is not a platform like \"linux/amd64\" or \"linux/arm64/v8\"", where, p);
}

void check_endpoint(std::string_view e, const std::string& where) {
  if (!starts_with(e, "http://") && !starts_with(e, "https://"))
    fail("{}: mirror \"{}\" must start with http:// or https://", where, e);
}

// [image] keys of the registry configuration the ecosystem writes (certs.d, auth.json).
void read_registry_sources(TableReader& r, Config& cfg) {
  if (auto v = r.str("registry_config_path")) {
    for (auto& dir : image::split_path_list(*v))
      if (dir[0] != '/') r.bad_value("registry_config_path", fmt::format("\"{}\" is not an absolute path", dir));
    cfg.registry_config_path = *v;
  }
  if (auto v = r.strings("auth_files")) {
    for (auto& f : *v)
      if (f.empty() || f[0] != '/') r.bad_value("auth_files", fmt::format("\"{}\" is not an absolute path", f));
    cfg.auth_files = *v;
  }
  if (auto v = r.integer("credential_helper_timeout", 1, 300)) cfg.credential_helper_timeout_s = static_cast<unsigned>(*v);
}

image::RegistryHost read_registry(const std::string& host, const toml::table& t, const std::string& file) {
  TableReader r(t, fmt::format("registry.\"{}\"", host), file);
  image::RegistryHost h;
  h.host = host;
  if (auto v = r.strings("mirrors")) {
    for (auto& m : *v) check_endpoint(m, file + ": " + r.dotted("mirrors"));
    h.mirrors = *v;
  }
  h.plain_http = r.boolean("plain_http").value_or(false);
  h.skip_verify = r.boolean("skip_verify").value_or(false);
  if (auto v = r.str("ca_file")) {
    if (!v->empty() && !path_exists(*v)) r.bad_value("ca_file", fmt::format("{}: no such file", *v));
    h.ca_file = *v;
  }
  h.username = r.str("username").value_or("");
  h.password = r.str("password").value_or("");
  r.finish();
  return h;
}

HandlerConfig read_handler(const std::string& name, const toml::table& t, const std::string& file) {
  TableReader r(t, fmt::format("runtime.handlers.\"{}\"", name), file);
  HandlerConfig h;
  h.name = name;
  h.binary = r.str("binary").value_or(name);
  if (h.binary.empty()) r.bad_value("binary", "must not be empty");
  h.args = r.strings("args").value_or(std::vector<std::string>{});
  h.root = r.str("root").value_or("");
  if (!h.root.empty() && h.root[0] != '/') r.bad_value("root", "must be an absolute path");
  r.finish();
  return h;
}

void read_runtime(const toml::table& t, Config& cfg, const std::string& path) {
  TableReader r(t, "runtime", path);
  if (auto v = r.str("cgroup_driver")) {
    if (*v == "cgroupfs") cfg.cgroup_driver = CgroupDriver::cgroupfs;
    else if (*v == "systemd") cfg.cgroup_driver = CgroupDriver::systemd;
    else r.bad_value("cgroup_driver", fmt::format("\"{}\" is not a cgroup driver (cgroupfs, systemd)", *v));
  }
  if (auto v = r.str("default_handler")) cfg.default_handler = *v;
  if (auto v = r.str("shim")) cfg.shim_binary = *v;
  if (auto v = r.str("pause")) cfg.pause_binary = *v;
  if (auto v = r.integer("start_timeout", 1, 3600)) cfg.start_timeout_s = static_cast<unsigned>(*v);
  if (auto v = r.integer("exec_sync_max_output", 4096, int64_t{1} << 30)) cfg.exec_sync_max_output = static_cast<uint64_t>(*v);
  if (auto v = r.boolean("restrict_oom_score_adj")) cfg.restrict_oom_score_adj = *v;
  if (auto v = r.str("seccomp_profile_root")) cfg.seccomp_profile_root = *v;
  if (auto v = r.integer("shm_size", 1 << 20, int64_t{1} << 40)) cfg.shm_size = static_cast<uint64_t>(*v);
  if (const toml::table* handlers = r.table("handlers")) {
    for (auto&& [name, node] : *handlers) {
      if (!node.is_table())
        fail("{}:{}: runtime.handlers.\"{}\": expected a table", path, node.source().begin.line, name.str());
      HandlerConfig h = read_handler(std::string(name.str()), *node.as_table(), path);
      std::erase_if(cfg.handlers, [&](const HandlerConfig& o) { return o.name == h.name; });
      cfg.handlers.push_back(std::move(h));
    }
  }
  bool known = false;
  for (auto& h : cfg.handlers) known |= h.name == cfg.default_handler;
  if (!known) r.bad_value("default_handler", fmt::format("no [runtime.handlers.\"{}\"] table", cfg.default_handler));
  r.finish();
}

void read_stream(const toml::table& t, Config& cfg, const std::string& path) {
  TableReader r(t, "stream", path);
  if (auto v = r.str("address")) cfg.stream.address = *v;
  if (auto v = r.integer("port", 0, 65535)) cfg.stream.port = static_cast<uint16_t>(*v);
  if (auto v = r.str("tls_cert")) cfg.stream.tls_cert = *v;
  if (auto v = r.str("tls_key")) cfg.stream.tls_key = *v;
  if (auto v = r.integer("idle_timeout", 1, 7 * 24 * 3600)) cfg.stream.idle_timeout = std::chrono::seconds(*v);
  if (auto v = r.integer("max_sessions", 1, 4096)) cfg.stream.max_sessions = static_cast<unsigned>(*v);
  r.finish();
  if (cfg.stream.tls_cert.empty() != cfg.stream.tls_key.empty())
    fail("{}: stream: give both tls_cert and tls_key, or neither", path);
}

void read_metrics(const toml::table& t, Config& cfg, const std::string& path) {
  TableReader r(t, "metrics", path);
  if (auto v = r.str("address")) {
    if (!v->empty()) {
      try {
        split_host_port(*v);
      } catch (const Error& e) {
        r.bad_value("address", e.message());
      }
    }
    cfg.metrics_address = *v;
  }
  r.finish();
}

void read_cni(const toml::table& t, Config& cfg, const std::string& path) {
  TableReader r(t, "cni", path);
  if (auto v = r.str("conf_dir")) cfg.cni_conf_dir = *v;
  if (auto v = r.strings("bin_dirs")) cfg.cni_bin_dirs = *v;
  if (auto v = r.str("cache_dir")) cfg.cni_cache_dir = *v;
  if (auto v = r.integer("timeout", 1, 600)) cfg.cni_timeout_s = static_cast<unsigned>(*v);
  r.finish();
}

} // namespace

// Where containerd, docker and podman keep what berthd reads by default: berthd's own
// certs.d first, then containerd's and docker's (containerd 2.0's default config_path);
// berthd's auth.json, then $REGISTRY_AUTH_FILE and the file `podman login` writes as root.
Config::Config() {
  handlers.push_back({"berth", "berth", {}, ""});
  registry_config_path = BERTH_SYSCONFDIR "/berth/certs.d:/etc/containerd/certs.d:/etc/docker/certs.d";
  auth_files.push_back(BERTH_SYSCONFDIR "/berth/auth.json");
  if (const char* env = std::getenv("REGISTRY_AUTH_FILE"); env && env[0] == '/') auth_files.push_back(env);
  auth_files.push_back("/run/containers/0/auth.json");
}

std::string Config::socket_path() const {
  return address.empty() ? path_join(state_dir, "berthd.sock") : address;
}

image::StoreOptions Config::store_options() const {
  image::StoreOptions o;
  o.root = root;
  o.registries = registries;
  o.registry_config_dirs = image::split_path_list(registry_config_path);
  o.auth_files = auth_files;
  o.credential_helper_timeout = std::chrono::seconds(credential_helper_timeout_s);
  o.max_concurrent_downloads = max_concurrent_downloads;
  o.retries = retries;
  if (!platform.empty()) {
    auto parts = split(platform, '/', false);
    o.platform_os = parts.at(0);
    o.platform_arch = parts.at(1);
    if (parts.size() > 2) o.platform_variant = parts[2];
  }
  return o;
}

Config load_config_file(const std::string& path, Config cfg) {
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (!path_exists(path)) fail_code(ENOENT, "config {}: no such file", path);
    fail("{}:{}:{}: invalid TOML: {}", path, e.source().begin.line, e.source().begin.column,
         e.description());
  }
  TableReader top(doc, "", path);
  if (auto v = top.str("root")) cfg.root = *v;
  if (auto v = top.str("state_dir")) cfg.state_dir = *v;
  if (auto v = top.integer("shutdown_timeout", 0, 3600)) cfg.shutdown_timeout_s = static_cast<unsigned>(*v);

  if (const toml::table* t = top.table("grpc")) {
    TableReader r(*t, "grpc", path);
    if (auto v = r.str("address")) cfg.address = *v;
    if (const toml::node* n = t->get("socket_mode"); n && n->is_integer()) {
      cfg.socket_mode = static_cast<mode_t>(*r.integer("socket_mode", 0, 0777));
    } else if (auto v = r.str("socket_mode")) {
      cfg.socket_mode = mode_from(*v, path + ": grpc.socket_mode");
    }
    if (auto v = r.str("socket_group")) cfg.socket_group = *v;
    if (auto v = r.integer("max_threads", 2, 1024)) cfg.max_threads = static_cast<unsigned>(*v);
    r.finish();
  }
  if (const toml::table* t = top.table("log")) {
    TableReader r(*t, "log", path);
    if (auto v = r.str("level")) cfg.log_level = level_from(*v, path + ": log.level");
    if (auto v = r.str("format")) cfg.log_format = format_from(*v, path + ": log.format");
    r.finish();
  }
  if (const toml::table* t = top.table("image")) {
    TableReader r(*t, "image", path);
    if (auto v = r.integer("max_concurrent_downloads", 1, 64)) cfg.max_concurrent_downloads = static_cast<unsigned>(*v);
    if (auto v = r.integer("retries", 0, 20)) cfg.retries = static_cast<unsigned>(*v);
    if (auto v = r.str("platform")) {
      check_platform(*v, path + ": image.platform");
      cfg.platform = *v;
    }
    if (auto v = r.strings("pinned_images")) {
      cfg.pinned_images.clear();
      for (auto& ref : *v) {
        try {
          cfg.pinned_images.push_back(image::normalize_reference(ref));
        } catch (const Error& e) {
          r.bad_value("pinned_images", e.message());
        }
      }
    }
    read_registry_sources(r, cfg);
    r.finish();
  }
  if (const toml::table* t = top.table("runtime")) read_runtime(*t, cfg, path);
  if (const toml::table* t = top.table("cni")) read_cni(*t, cfg, path);
  if (const toml::table* t = top.table("stream")) read_stream(*t, cfg, path);
  if (const toml::table* t = top.table("metrics")) read_metrics(*t, cfg, path);
  if (const toml::table* t = top.table("registry")) {
    cfg.registries.clear();
    for (auto&& [host, node] : *t) {
      if (!node.is_table())
        fail("{}:{}: registry.\"{}\": expected a table ([registry.\"{}\"])", path, node.source().begin.line,
             host.str(), host.str());
      cfg.registries.push_back(read_registry(std::string(host.str()), *node.as_table(), path));
    }
  }
  top.finish();
  return cfg;
}

namespace {

struct FlagSpec {
  const char* name;
  const char* arg;
  const char* help;
};

constexpr FlagSpec kFlags[] = {
    {"config", "PATH", "configuration file (default " BERTH_SYSCONFDIR "/berth/berthd.toml, optional)"},
    {"root", "DIR", "persistent state: images, content, snapshots (default /var/lib/berthd)"},
    {"state-dir", "DIR", "runtime files: socket, lock (default /run/berthd)"},
    {"address", "PATH", "gRPC unix socket (default <state-dir>/berthd.sock)"},
    {"log-level", "LEVEL", "debug, info, warn or error (default info)"},
    {"log-format", "FORMAT", "text (logfmt) or json (default text)"},
    {"max-concurrent-downloads", "N", "layers fetched in parallel per pull (default 3)"},
    {"cgroup-driver", "DRIVER", "cgroupfs or systemd, as the kubelet's (default cgroupfs)"},
    {"cni-conf-dir", "DIR", "CNI network configurations (default /etc/cni/net.d)"},
};

const FlagSpec* find_flag(std::string_view name) {
  for (auto& f : kFlags)
    if (name == f.name) return &f;
  return nullptr;
}

} // namespace

std::string usage_text() {
  std::string s = "Usage: berthd [OPTIONS]\n       berthd config default\n       berthd config dump [OPTIONS]\n\n"
                  "The Berth CRI v1 daemon: images, pod sandboxes and containers (see berthd(8)).\n"
                  "\"config default\" prints the default configuration as TOML berthd loads; \"config dump\"\n"
                  "prints the effective one (the file and the flags applied).\n\n";
  auto row = [&s](std::string_view left, std::string_view help) { s += fmt::format("  {:<32} {}\n", left, help); };
  for (auto& f : kFlags) row(fmt::format("--{} {}", f.name, f.arg), f.help);
  row("--version", "print the version and exit");
  row("-h, --help", "this help");
  return s;
}

CommandLine parse_command_line(int argc, char** argv) {
  CommandLine cl;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      cl.help = true;
      continue;
    }
    if (a == "--version" || a == "-v") {
      cl.version = true;
      continue;
    }
    if (a == "config" && cl.config_command.empty()) {
      std::string_view what = i + 1 < argc ? std::string_view(argv[i + 1]) : std::string_view();
      if (what != "default" && what != "dump") fail_usage("berthd config: say \"default\" or \"dump\" (see berthd --help)");
      cl.config_command = std::string(what);
      ++i;
      continue;
    }
    if (!starts_with(a, "--")) fail_usage("unexpected argument \"{}\" (see berthd --help)", a);
    std::string_view name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
      has_value = true;
    }
    if (!find_flag(name)) fail_usage("unknown flag --{} (see berthd --help)", name);
    if (!has_value) {
      if (i + 1 >= argc) fail_usage("flag --{} needs a value", name);
      value = argv[++i];
    }
    if (name == "config") {
      cl.config_path = value;
      cl.config_given = true;
    } else {
      cl.overrides.emplace_back(std::string(name), value);
    }
  }
  return cl;
}

void apply_overrides(Config& cfg, const CommandLine& cl) {
  for (auto& [name, value] : cl.overrides) {
    std::string where = "--" + name;
    if (name == "root") cfg.root = value;
    else if (name == "state-dir") cfg.state_dir = value;
    else if (name == "address") cfg.address = value;
    else if (name == "log-level") cfg.log_level = level_from(value, where);
    else if (name == "log-format") cfg.log_format = format_from(value, where);
    else if (name == "max-concurrent-downloads") {
      auto n = parse_uint(value);
      if (!n || *n < 1 || *n > 64) fail("{}: \"{}\" is not a number in 1..64", where, value);
      cfg.max_concurrent_downloads = static_cast<unsigned>(*n);
    }
    else if (name == "cgroup-driver") {
      if (value == "cgroupfs") cfg.cgroup_driver = CgroupDriver::cgroupfs;
      else if (value == "systemd") cfg.cgroup_driver = CgroupDriver::systemd;
      else fail("{}: \"{}\" is not a cgroup driver (cgroupfs, systemd)", where, value);
    } else if (name == "cni-conf-dir") cfg.cni_conf_dir = value;
    if (value.empty() && (name == "root" || name == "state-dir"))
      fail("{}: the directory must not be empty", where);
  }
}

} // namespace berth::cri
