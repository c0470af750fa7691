// `berthd config default` and `berthd config dump`: a Config written back as the TOML
// load_config_file() reads, every key present and commented (contrib/berthd.toml has the
// long explanations). The tests load the output again (tests/cri/test_config_cli.py).
#include "cri/server/config.hpp"

#include <fmt/format.h>

namespace berth::cri {
namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string q(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') (out += '\\') += static_cast<char>(c);
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04X}", c);
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + q(v[i]);
  return out + "]";
}

class Writer {
public:
  void comment(std::string_view c) { s_ += fmt::format("# {}\n", c); }
  void raw(std::string_view text) { s_ += text; }
  void table(std::string_view name) { s_ += fmt::format("\n[{}]\n", name); }
  void key(std::string_view k, std::string_view value, std::string_view help) {
    if (!help.empty()) comment(help);
    s_ += fmt::format("{} = {}\n", k, value);
  }
  void str(std::string_view k, std::string_view v, std::string_view help) { key(k, q(v), help); }
  void num(std::string_view k, uint64_t v, std::string_view help) { key(k, fmt::format("{}", v), help); }
  void boolean(std::string_view k, bool v, std::string_view help) { key(k, v ? "true" : "false", help); }
  void strings(std::string_view k, const std::vector<std::string>& v, std::string_view help) {
    key(k, list(v), help);
  }
  std::string take() { return std::move(s_); }

private:
  std::string s_;
};

void write_image(Writer& w, const Config& c) {
  w.table("image");
  w.num("max_concurrent_downloads", c.max_concurrent_downloads, "layers downloaded in parallel by one pull (1..64)");
  w.num("retries", c.retries, "retries per registry request, exponential backoff (0..20)");
  if (c.platform.empty()) w.raw("# platform picked from multi-platform images; unset: this host's\n#platform = \"linux/amd64\"\n");
  else w.str("platform", c.platform, "platform picked from multi-platform images");
  w.strings("pinned_images", c.pinned_images, "images the kubelet's image garbage collection never removes");
  w.str("registry_config_path", c.registry_config_path,
        "containerd's certs.d roots, ':'-separated: <root>/<host>/hosts.toml (docs/images.md)");
  w.strings("auth_files", c.auth_files, "docker config.json / podman auth.json files, in order; missing ones skipped");
  w.num("credential_helper_timeout", c.credential_helper_timeout_s, "seconds a docker-credential-* helper may take");
}

void write_runtime(Writer& w, const Config& c) {
  w.table("runtime");
  w.str("cgroup_driver", c.cgroup_driver == CgroupDriver::systemd ? "systemd" : "cgroupfs",
        "cgroupfs or systemd, as the kubelet's cgroupDriver");
  w.str("default_handler", c.default_handler, "the handler of pods that name none");
  w.str("shim", c.shim_binary, "berth-shim: a path or a name (next to berthd, libexec, PATH)");
  w.str("pause", c.pause_binary, "berth-pause: a path or a name");
  w.num("start_timeout", c.start_timeout_s, "seconds one container's create + start may take");
  w.num("exec_sync_max_output", c.exec_sync_max_output, "bytes of ExecSync output kept");
  w.boolean("restrict_oom_score_adj", c.restrict_oom_score_adj, "clamp oom_score_adj to berthd's own");
  w.str("seccomp_profile_root", c.seccomp_profile_root, "where Localhost seccomp profiles are looked up");
  w.num("shm_size", c.shm_size, "bytes of each pod's /dev/shm");
  for (auto& h : c.handlers) {
    w.table(fmt::format("runtime.handlers.{}", q(h.name)));
    w.str("binary", h.binary, "");
    w.strings("args", h.args, "");
    w.str("root", h.root, "");
  }
}

} // namespace

std::string config_toml(const Config& c) {
  Writer w;
  w.comment("berthd configuration (berthd(8), docs/cri.md, contrib/berthd.toml).");
  w.str("root", c.root, "persistent state: content, metadata, snapshots, runtime.db");
  w.str("state_dir", c.state_dir, "runtime files: socket, lock, pods' and containers' directories");
  w.num("shutdown_timeout", c.shutdown_timeout_s, "seconds SIGTERM waits for running calls");

  w.table("grpc");
  w.str("address", c.address, "the CRI socket; empty: <state_dir>/berthd.sock");
  w.str("socket_mode", fmt::format("{:04o}", c.socket_mode), "octal permissions of the socket");
  w.str("socket_group", c.socket_group, "group owning the socket; empty: root's");
  w.num("max_threads", c.max_threads, "gRPC threads; a call beyond them gets RESOURCE_EXHAUSTED");

  w.table("log");
  const char* level = c.log_level == dlog::Level::debug ? "debug"
                      : c.log_level == dlog::Level::warn  ? "warn"
                      : c.log_level == dlog::Level::error ? "error"
                                                          : "info";
  w.str("level", level, "debug, info, warn or error");
  w.str("format", c.log_format == dlog::Format::json ? "json" : "text", "text (logfmt) or json");

  write_image(w, c);
  write_runtime(w, c);

  w.table("stream");
  w.str("address", c.stream.address, "the IP address the Exec/Attach/PortForward URLs name");
  w.num("port", c.stream.port, "0: an ephemeral port");
  w.str("tls_cert", c.stream.tls_cert, "PEM certificate and key, both or neither");
  w.str("tls_key", c.stream.tls_key, "");
  w.num("idle_timeout", static_cast<uint64_t>(c.stream.idle_timeout.count()), "seconds of silence before a session closes");
  w.num("max_sessions", c.stream.max_sessions, "upgraded connections at once");

  w.table("metrics");
  w.str("address", c.metrics_address, "\"IP:port\" of the Prometheus endpoint (GET /metrics); empty: none");

  w.table("cni");
  w.str("conf_dir", c.cni_conf_dir, "network configurations");
  w.strings("bin_dirs", c.cni_bin_dirs, "plugin directories, in order");
  w.str("cache_dir", c.cni_cache_dir, "libcni's attachment cache");
  w.num("timeout", c.cni_timeout_s, "seconds one plugin call may take");

  for (auto& r : c.registries) {
    w.table(fmt::format("registry.{}", q(r.host)));
    w.strings("mirrors", r.mirrors, "");
    w.boolean("plain_http", r.plain_http, "");
    w.boolean("skip_verify", r.skip_verify, "");
    w.str("ca_file", r.ca_file, "");
    w.str("username", r.username, "");
    w.str("password", r.password, "");
  }
  if (c.registries.empty())
    w.raw("\n# berthd's own per-registry tables (they take precedence over certs.d):\n"
          "#[registry.\"docker.io\"]\n#mirrors = [\"https://mirror.example\"]\n");
  return w.take();
}

} // namespace berth::cri
