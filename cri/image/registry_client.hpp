// OCI distribution client: endpoint resolution (mirrors with fallback, per-host TLS and
// plain HTTP), Bearer token and basic auth, manifests and streamed blobs with retries,
// backoff and range resume. Every request goes through http_request() (cri/image/http.hpp)
// with its limits; every wait stops when the pull is cancelled or past its deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cri/image/http.hpp"
#include "cri/image/image_store.hpp"
#include "cri/image/reference.hpp"
#include "cri/image/registry_auth.hpp"
#include "cri/image/registry_hosts.hpp"

namespace berth::image {


// True for "localhost" and loopback IP literals (127.0.0.0/8, ::1), with or without a
// port: the hosts that default to plain HTTP, as in containerd (docker.IsLocalhost).
// "127.example.com" is a name like any other.
bool is_loopback_host(std::string_view domain);

// Endpoints for a registry domain. berthd's own [registry."<domain>"] table when there is
// one (its mirrors in order, then the host itself); else the host directory under
// config_dirs (certs.d, registry_hosts.hpp); else the default server alone.
std::vector<Endpoint> resolve_endpoints(const std::vector<RegistryHost>& hosts, std::string_view domain,
                                        const std::vector<std::string>& config_dirs = {});
// Credentials, the first source that has any: the CRI AuthConfig (when its
// server_address, if set, names this registry), the host's static ones, then the auth
// files of `sources` (auth.json, credential helpers) for <domain>/<repository>.
Credentials resolve_credentials(const std::vector<RegistryHost>& hosts, std::string_view domain,
                                const AuthConfig& auth, const AuthSources& sources = {},
                                std::string_view repository = {});

// A WWW-Authenticate challenge: scheme (lower case) and its auth-params (names lower
// case). Linear, for any input; values keep their bytes (quoted-string escapes undone).
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
Challenge parse_challenge(std::string_view header);

struct FetchedManifest {
  std::string body;
  std::string media_type;  // from Content-Type, or the body's mediaType
  size_t endpoint = 0;     // index of the endpoint that answered
};

// When the requests of a pull (or of a download shared by pulls) must stop.
struct StopCheck {
  std::function<bool()> stop;  // true: cancelled (or every interested pull is gone)
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::string why_deadline;    // "pull deadline of 3600 s", "blob deadline of 1200 s"
};

// One repository on one registry, shared by the threads of a pull (tokens are cached).
class RegistrySession {
public:
  RegistrySession(std::vector<Endpoint> endpoints, std::string repository, Credentials creds, unsigned retries);

  // GET /v2/<repo>/manifests/<tag or digest>, trying the endpoints in order.
  FetchedManifest get_manifest(std::string_view object, const StopCheck& stop);
  // GET /v2/<repo>/blobs/<digest> streaming into sink, from `preferred` endpoint first.
  // Transient failures are retried with Range from the bytes already delivered.
  void get_blob(std::string_view digest, uint64_t expected_size, size_t preferred, const BodySink& sink,
                const StopCheck& stop);

  const std::string& repository() const { return repository_; }
  size_t endpoint_count() const { return endpoints_.size(); }

private:
  HttpResponse request(size_t endpoint, const std::string& path, const std::vector<std::string>& headers,
                       const BodySink* sink, uint64_t range_from, const StopCheck& stop, bool whole_deadline);
  bool authorize(size_t endpoint, const std::string& challenge, const StopCheck& stop);
  std::string auth_header(size_t endpoint);
  // Sleeps the backoff of `attempt`; throws when the pull stops meanwhile.
  void backoff(unsigned attempt, const StopCheck& stop);

  std::vector<Endpoint> endpoints_;
  std::string repository_;
  Credentials creds_;
  unsigned retries_;
  std::mutex mu_;
  std::map<size_t, std::string> auth_;  // endpoint -> Authorization header value
};

// Throws the error for a StopCheck that says stop: ECANCELED or ETIMEDOUT.
[[noreturn]] void throw_stopped(const StopCheck& stop, std::string_view what);

} // namespace berth::image
