// Registry credentials from the files docker and podman write: docker's config.json and
// containers' auth.json ({"auths": {KEY: {"auth": base64(user:pass)} | {"username",
// "password"} | {"identitytoken"}}, "credHelpers": {HOST: NAME}, "credsStore": NAME}),
// and docker credential helpers (`docker-credential-NAME get`, the server URL on stdin,
// {"Username", "Secret"} on stdout).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::image {

struct Credentials {
  std::string username, password;
  std::string identity_token;  // OAuth2 refresh token for the token endpoint
  std::string registry_token;  // a Bearer token to send as is
  bool empty() const { return username.empty() && identity_token.empty() && registry_token.empty(); }
};

struct AuthSources {
  std::vector<std::string> files;  // read in order; a missing file is skipped
  std::chrono::milliseconds helper_timeout{10000};
  size_t helper_max_output = 64 << 10;
};

inline constexpr size_t kMaxAuthFileBytes = 1 << 20;

// The host an auth-file key names, docker.io for Docker Hub's spellings:
// "https://index.docker.io/v1/" -> "docker.io", "quay.io/org" -> "quay.io".
std::string auth_key_host(std::string_view key);

// Credentials for <domain>/<repository> from one auth file's text (file: for messages;
// helpers: how to run credential helpers). Per file: credHelpers[host], then the most
// specific "auths" key ("host/ns/repo", "host/ns", "host", as podman matches), then
// credsStore. nullopt: the file has nothing for this registry. Throws EINVAL naming the
// file for JSON it cannot read, and the helper's failure when one fails.
std::optional<Credentials> credentials_from_auth_json(std::string_view text, const std::string& file,
                                                      std::string_view domain, std::string_view repository,
                                                      const AuthSources& helpers);

// The first credentials the files in `sources` hold for <domain>/<repository>.
std::optional<Credentials> credentials_from_auth_files(const AuthSources& sources, std::string_view domain,
                                                       std::string_view repository);

// Runs docker-credential-<name> (found in PATH) `get` with server_url on stdin, within
// the timeout (then the helper's process group is killed). nullopt: the helper has no
// credentials for the server ("credentials not found"). Throws naming the helper.
std::optional<Credentials> run_credential_helper(const std::string& name, const std::string& server_url,
                                                 const AuthSources& limits);

// The server URL docker hands a helper for a registry host ("https://index.docker.io/v1/"
// for docker.io, else the host itself).
std::string helper_server_url(std::string_view domain);

} // namespace berth::image
