// Registry host configuration in containerd's certs.d layout (containerd docs/hosts.md):
// a directory per registry host ("docker.io", "127.0.0.1:5000", "_default") under one of
// the configured roots, holding a hosts.toml (server, [host."URL"] tables in order with
// capabilities, ca, client, skip_verify, header, override_path), or, without a
// hosts.toml, Docker's certificate files (*.crt CA, *.cert + *.key client pairs).
// Read at every pull, as containerd does: edits need no restart.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::image {

// What an endpoint may be used for (containerd's HostCapabilities).
enum Capability : unsigned { kCapPull = 1, kCapResolve = 2, kCapPush = 4, kCapAll = 7 };

struct Endpoint {
  std::string base_url;              // "https://registry-1.docker.io", "http://127.0.0.1:5000"
  std::string api_path = "/v2";      // prefix of every request path
  bool mirror = false;
  bool skip_verify = false;
  std::vector<std::string> ca_files; // PEM bundles trusted besides the system's
  std::string client_cert, client_key;  // mTLS (PEM); the key may sit in the cert file
  std::vector<std::string> headers;  // "Name: value", sent with every request
  unsigned capabilities = kCapPull | kCapResolve | kCapPush;
  std::string url() const { return base_url + api_path; }  // the API root: "<base_url>/v2"
};

inline constexpr size_t kMaxHostsFileBytes = 1 << 20;  // hosts.toml
inline constexpr size_t kMaxHostEntries = 64;          // [host."..."] tables per file

// The endpoints of `domain` from a hosts.toml's text (dir: its directory, for relative
// paths and messages). Unknown keys are skipped, as containerd skips them, and named in
// `warnings` ("<dir>/hosts.toml:3: host.\"https://m\".foo: unknown key, ignored").
// Throws EINVAL naming the file, line and key for a value containerd would reject.
std::vector<Endpoint> parse_hosts_toml(std::string_view text, const std::string& dir, std::string_view domain,
                                       std::vector<std::string>* warnings = nullptr);

// The endpoints from Docker's certificate files in dir (no hosts.toml): the default
// server of `domain` over https (even for a loopback host: the files mean TLS) with
// every *.crt as a CA and the first *.cert with its *.key.
std::vector<Endpoint> legacy_cert_endpoints(const std::string& dir, std::string_view domain);

// The host directory for `domain`: in each root in order, <root>/<domain> then
// <root>/_default; the first that exists wins. nullopt: none.
std::optional<std::string> find_host_dir(const std::vector<std::string>& roots, std::string_view domain);

// The endpoints from the host directory of `domain`, nullopt when there is none.
std::optional<std::vector<Endpoint>> load_host_dir(const std::vector<std::string>& roots, std::string_view domain);

// The server berthd talks to for `domain` with no configuration: https://<host>
// ("registry-1.docker.io" for docker.io), http:// for loopback hosts.
std::string default_server(std::string_view domain);

// A regular file of at most `max` bytes; nullopt when it does not exist. Throws naming
// the path when it is something else, too large or unreadable.
std::optional<std::string> read_config_file(const std::string& path, size_t max);

// "a:b:c" split on ':' with empty parts dropped (containerd's config_path list).
std::vector<std::string> split_path_list(std::string_view list);

} // namespace berth::image
