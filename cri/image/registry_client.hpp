// OCI distribution client on libcurl: endpoint resolution (mirrors with fallback,
// per-host TLS and plain HTTP), Bearer token and basic auth, manifests and streamed
// blobs with retries, backoff and range resume.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cri/image/image_store.hpp"
#include "cri/image/reference.hpp"

namespace berth::image {

struct Endpoint {
  std::string base_url;  // "https://registry-1.docker.io", "http://127.0.0.1:5000"
  bool mirror = false;
  bool skip_verify = false;
  std::string ca_file;
};

struct Credentials {
  std::string username, password;
  std::string identity_token;  // OAuth2 refresh token for the token endpoint
  std::string registry_token;  // a Bearer token to send as is
  bool empty() const { return username.empty() && identity_token.empty() && registry_token.empty(); }
};

// Endpoints for a registry domain: its mirrors in order, then the host itself.
std::vector<Endpoint> resolve_endpoints(const std::vector<RegistryHost>& hosts, std::string_view domain);
// Credentials from the CRI AuthConfig when it carries any (and its server_address, if
// set, names this registry), else the host's static ones.
Credentials resolve_credentials(const std::vector<RegistryHost>& hosts, std::string_view domain,
                                const AuthConfig& auth);

struct FetchedManifest {
  std::string body;
  std::string media_type;  // from Content-Type, or the body's mediaType
  size_t endpoint = 0;     // index of the endpoint that answered
};

// The body sink gets the bytes in order; returning false aborts the transfer.
using BodySink = std::function<bool(const char* data, size_t len)>;

// One repository on one registry, shared by the threads of a pull (tokens are cached).
class RegistrySession {
public:
  RegistrySession(std::vector<Endpoint> endpoints, std::string repository, Credentials creds, unsigned retries);

  // GET /v2/<repo>/manifests/<tag or digest>, trying the endpoints in order.
  FetchedManifest get_manifest(std::string_view object);
  // GET /v2/<repo>/blobs/<digest> streaming into sink, from `preferred` endpoint first.
  // Transient failures are retried with Range from the bytes already delivered.
  void get_blob(std::string_view digest, uint64_t expected_size, size_t preferred, const BodySink& sink);

  const std::string& repository() const { return repository_; }

private:
  struct Response;
  Response request(size_t endpoint, const std::string& path, const std::vector<std::string>& headers,
                   const BodySink& sink, uint64_t range_from);
  bool authorize(size_t endpoint, const std::string& challenge);
  std::string auth_header(size_t endpoint);

  std::vector<Endpoint> endpoints_;
  std::string repository_;
  Credentials creds_;
  unsigned retries_;
  std::mutex mu_;
  std::map<size_t, std::string> auth_;  // endpoint -> Authorization header value
};

} // namespace berth::image
