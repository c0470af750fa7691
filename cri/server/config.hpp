// berthd's configuration: defaults, the TOML file (--config) and command-line
// overrides, in that order. Every key is documented in contrib/berthd.toml and
// docs/cri.md; an unknown key or a value of the wrong type is an error naming it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "cri/image/image_store.hpp"
#include "cri/stream/server.hpp"
#include "cri/pod/oci_spec.hpp"
#include "common/daemon_log.hpp"

namespace berth::cri {

// <sysconfdir>/berth/berthd.toml of the install prefix (/etc/berth/berthd.toml with /usr).
extern const char* const kDefaultConfigPath;

// [runtime.handlers.NAME]: a runc-compatible runtime a RuntimeClass can name.
struct HandlerConfig {
  std::string name;
  std::string binary;              // path, or a name looked up next to berthd and in PATH
  std::vector<std::string> args;   // extra global flags for every call
  std::string root;                // its --root; empty: <state_dir>/runtime/<name>
};

struct Config {
  std::string root = "/var/lib/berthd";     // images: content, metadata, snapshots
  std::string state_dir = "/run/berthd";    // runtime files: socket, lock
  std::string address;                      // gRPC unix socket; empty: <state_dir>/berthd.sock
  mode_t socket_mode = 0660;
  std::string socket_group;                 // group name or gid owning the socket; empty: root's
  unsigned max_threads = 64;                // gRPC threads; a call beyond them gets RESOURCE_EXHAUSTED
  unsigned shutdown_timeout_s = 10;         // SIGTERM: wait this long for running calls
  dlog::Level log_level = dlog::Level::info;
  dlog::Format log_format = dlog::Format::text;
  unsigned max_concurrent_downloads = 3;    // layers fetched in parallel per pull
  unsigned retries = 3;                     // registry request retries (exponential backoff)
  std::string platform;                     // "os/arch[/variant]"; empty: the host's
  std::vector<std::string> pinned_images;   // normalised references reported as pinned
  std::vector<image::RegistryHost> registries;
  // [image] registry_config_path: containerd's certs.d roots, ':'-separated as its
  // config_path; auth_files: docker/podman credential files. Defaults in Config().
  std::string registry_config_path;
  std::vector<std::string> auth_files;
  unsigned credential_helper_timeout_s = 10;

  // [runtime]: pods and containers.
  CgroupDriver cgroup_driver = CgroupDriver::cgroupfs;
  std::string default_handler = "berth";   // used when a request names no handler
  std::vector<HandlerConfig> handlers;     // always holds "berth"
  std::string shim_binary = "berth-shim";  // path or name (next to berthd, then PATH)
  std::string pause_binary = "berth-pause";
  unsigned start_timeout_s = 120;          // create + start of one container
  // ExecSync output kept (stdout and stderr together): the kubelet takes replies of at
  // most 16 MiB, so the default leaves room for the rest of the message.
  uint64_t exec_sync_max_output = (16 << 20) - (64 << 10);
  bool restrict_oom_score_adj = false;     // hosts without CAP_SYS_RESOURCE
  std::string seccomp_profile_root = "/var/lib/kubelet/seccomp";
  uint64_t shm_size = 64 << 20;            // each pod's /dev/shm
  // [cni]
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  std::string cni_cache_dir = "/var/lib/cni";
  unsigned cni_timeout_s = 60;

  // [stream]: the server behind Exec, Attach and PortForward URLs.
  stream::ServerConfig stream;

  // [metrics]: "host:port" of the Prometheus endpoint (GET /metrics); empty: none.
  std::string metrics_address;

  Config();

  std::string socket_path() const;
  // The image library's options derived from this configuration.
  image::StoreOptions store_options() const;
};

// Reads and validates a TOML file on top of `base`. Errors name the file, the key
// and its line: "/etc/berth/berthd.toml:4: grpc.adress: unknown key".
Config load_config_file(const std::string& path, Config base = {});

// Command line. Flags override the file: parse_command_line records them, then the
// caller loads the file and applies the overrides.
struct CommandLine {
  std::string config_path = kDefaultConfigPath;
  bool config_given = false;   // an explicit --config must exist; the default may not
  bool help = false, version = false;
  // "config default": print the defaults as TOML; "config dump": the effective
  // configuration (file and flags applied) as TOML. Empty: run the daemon.
  std::string config_command;
  std::vector<std::pair<std::string, std::string>> overrides;  // flag name -> value
};
CommandLine parse_command_line(int argc, char** argv);
void apply_overrides(Config& cfg, const CommandLine& cl);
std::string usage_text();

// The configuration as a TOML file berthd loads (cri/server/config_dump.cpp), each key
// with a comment saying what it does.
std::string config_toml(const Config& cfg);

} // namespace berth::cri
