#include "cri/image/registry_client.hpp"

#include <arpa/inet.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxManifestBytes = 4 << 20;
constexpr size_t kMaxTokenBytes = 1 << 20;  // a JWT is a few KiB
constexpr size_t kMaxRealm = 4096;
constexpr auto kRequestTimeout = std::chrono::seconds(120);  // a manifest or token request
const char* kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string unbase64(std::string_view in) {
  if (in.size() > (1 << 20)) fail_code(EINVAL, "auth: longer than 1 MiB");
  auto out = base64_decode(in);
  if (!out) fail_code(EINVAL, "auth: invalid base64");
  return *out;
}

bool transient_status(long status) { return status == 408 || status == 429 || status >= 500; }

bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "HTTP 404" or curl's error, bounded.
std::string describe(const HttpResponse& r) {
  if (r.transport_ok) return fmt::format("HTTP {}", r.status);
  return r.error;
}

} // namespace

void throw_stopped(const StopCheck& stop, std::string_view what) {
  if (Clock::now() >= stop.deadline)
    fail_code(ETIMEDOUT, "{}: {} exceeded", what, stop.why_deadline.empty() ? "deadline" : stop.why_deadline);
  fail_code(ECANCELED, "{}: cancelled (the client went away)", what);
}

bool is_loopback_host(std::string_view domain) {
  std::string_view host = domain;
  if (host.starts_with('[')) {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    host = host.substr(1, close - 1);
  } else if (size_t colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  std::string h(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

std::vector<Endpoint> resolve_endpoints(const std::vector<RegistryHost>& hosts, std::string_view domain,
                                        const std::vector<std::string>& config_dirs) {
  const RegistryHost* cfg = nullptr;
  for (auto& h : hosts)
    if (h.host == domain) cfg = &h;
  if (!cfg) {
    if (auto eps = load_host_dir(config_dirs, domain)) return *eps;
  }
  std::vector<Endpoint> out;
  auto endpoint = [&](std::string url, bool mirror) {
    Endpoint ep;
    ep.base_url = std::move(url);
    ep.mirror = mirror;
    if (cfg) {
      ep.skip_verify = cfg->skip_verify;
      if (!cfg->ca_file.empty()) ep.ca_files.push_back(cfg->ca_file);
    }
    out.push_back(std::move(ep));
  };
  if (cfg) {
    for (auto& m : cfg->mirrors) {
      std::string url = m.find("://") == std::string::npos ? "https://" + m : m;
      while (url.ends_with('/')) url.pop_back();
      if (url.ends_with("/v2")) url.resize(url.size() - 3);
      endpoint(url, true);
    }
  }
  std::string host = domain == "docker.io" ? "registry-1.docker.io" : std::string(domain);
  bool plain = cfg ? cfg->plain_http : is_loopback_host(domain);
  endpoint((plain ? "http://" : "https://") + host, false);
  return out;
}

namespace {

// CRI's server_address names the registry the credentials are for ("https://index.docker.io/v1/",
// "quay.io", "127.0.0.1:5000"); containerd ignores credentials for another host.
bool auth_matches(std::string_view server_address, std::string_view domain) {
  if (server_address.empty()) return true;
  std::string_view a = server_address;
  if (size_t scheme = a.find("://"); scheme != std::string_view::npos) a.remove_prefix(scheme + 3);
  a = a.substr(0, a.find('/'));
  if (a == domain) return true;
  auto is_docker_hub = [](std::string_view h) {
    return h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io";
  };
  return is_docker_hub(a) && is_docker_hub(domain);
}

} // namespace

Credentials resolve_credentials(const std::vector<RegistryHost>& hosts, std::string_view domain,
                                const AuthConfig& auth_in, const AuthSources& sources, std::string_view repository) {
  Credentials c;
  AuthConfig auth = auth_matches(auth_in.server_address, domain) ? auth_in : AuthConfig{};
  if (!auth.auth.empty()) {
    std::string decoded = unbase64(auth.auth);
    size_t colon = decoded.find(':');
    if (colon == std::string::npos)
      fail_code(EINVAL, "auth for {}: \"auth\" is not base64 of user:password", excerpt(domain));
    c.username = decoded.substr(0, colon);
    c.password = decoded.substr(colon + 1);
  }
  if (!auth.username.empty()) {
    c.username = auth.username;
    c.password = auth.password;
  }
  c.identity_token = auth.identity_token;
  c.registry_token = auth.registry_token;
  if (c.empty()) {
    for (auto& h : hosts)
      if (h.host == domain && !h.username.empty()) {
        c.username = h.username;
        c.password = h.password;
      }
  }
  if (c.empty())
    if (auto from_files = credentials_from_auth_files(sources, domain, repository)) c = *from_files;
  return c;
}

Challenge parse_challenge(std::string_view h) {
  Challenge out;
  size_t i = 0, n = h.size();
  auto skip_ws = [&] {
    while (i < n && (h[i] == ' ' || h[i] == '\t')) ++i;
  };
  skip_ws();
  size_t start = i;
  while (i < n && is_tchar(h[i])) ++i;
  out.scheme = std::string(h.substr(start, i - start));
  for (auto& c : out.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (i < n) {
    while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) ++i;
    start = i;
    while (i < n && is_tchar(h[i])) ++i;
    std::string name(h.substr(start, i - start));
    skip_ws();
    if (name.empty() || i >= n || h[i] != '=') {  // not an auth-param (token68 or junk): skip to the next comma
      while (i < n && h[i] != ',') ++i;
      continue;
    }
    ++i;
    skip_ws();
    std::string value;
    if (i < n && h[i] == '"') {
      ++i;
      while (i < n && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < n) ++i;
        value += h[i++];
      }
      if (i < n) ++i;  // the closing quote
    } else {
      start = i;
      while (i < n && h[i] != ',' && h[i] != ' ' && h[i] != '\t') ++i;
      value = std::string(h.substr(start, i - start));
    }
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.params.emplace(std::move(name), std::move(value));  // the first of repeated params wins
  }
  return out;
}

RegistrySession::RegistrySession(std::vector<Endpoint> endpoints, std::string repository, Credentials creds,
                                 unsigned retries)
    : endpoints_(std::move(endpoints)), repository_(std::move(repository)), creds_(std::move(creds)),
      retries_(retries) {
  if (!creds_.registry_token.empty())
    for (size_t i = 0; i < endpoints_.size(); ++i) auth_[i] = "Bearer " + creds_.registry_token;
}

std::string RegistrySession::auth_header(size_t endpoint) {
  std::lock_guard lk(mu_);
  auto it = auth_.find(endpoint);
  return it == auth_.end() ? std::string() : it->second;
}

void RegistrySession::backoff(unsigned attempt, const StopCheck& stop) {
  auto until = Clock::now() + std::chrono::milliseconds(200) * (1u << std::min(attempt, 5u));
  while (Clock::now() < until) {
    if (Clock::now() >= stop.deadline || (stop.stop && stop.stop())) throw_stopped(stop, "registry request");
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
}

HttpResponse RegistrySession::request(size_t endpoint, const std::string& path, const std::vector<std::string>& headers,
                                      const BodySink* sink, uint64_t range_from, const StopCheck& stop,
                                      bool whole_deadline) {
  const Endpoint& ep = endpoints_[endpoint];
  HttpRequest req;
  req.url = ep.url() + path;
  req.headers = headers;
  req.headers.insert(req.headers.end(), ep.headers.begin(), ep.headers.end());
  req.client_cert = ep.client_cert;
  req.client_key = ep.client_key;
  std::string auth = auth_header(endpoint);
  if (!auth.empty()) req.headers.push_back("Authorization: " + auth);
  req.range_from = range_from;
  req.skip_verify = ep.skip_verify;
  req.ca_files = ep.ca_files;
  req.max_body = kMaxManifestBytes;
  req.sink = sink;
  req.deadline = whole_deadline ? stop.deadline : std::min(stop.deadline, Clock::now() + kRequestTimeout);
  req.stop = stop.stop;
  HttpResponse r = http_request(req);
  if (r.stopped || Clock::now() >= stop.deadline) throw_stopped(stop, fmt::format("GET {}{}", ep.url(), path));
  return r;
}

// Answers a 401 challenge: fetches a Bearer token (anonymous or with credentials) or sets
// basic auth. Returns false when the challenge cannot be met.
bool RegistrySession::authorize(size_t endpoint, const std::string& header, const StopCheck& stop) {
  Challenge ch = parse_challenge(header);
  if (ch.scheme == "basic") {
    if (creds_.username.empty()) return false;
    std::lock_guard lk(mu_);
    auth_[endpoint] = "Basic " + base64_encode(creds_.username + ":" + creds_.password);
    return true;
  }
  if (ch.scheme != "bearer") return false;
  std::string realm = ch.params.count("realm") ? ch.params["realm"] : std::string();
  if (realm.empty()) return false;
  if (realm.size() > kMaxRealm) fail("token realm is {} bytes long (at most {})", realm.size(), kMaxRealm);
  {
    std::string lower = realm.substr(0, 8);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!lower.starts_with("https://") && !lower.starts_with("http://"))
      fail("token realm {} is not an http or https URL", excerpt(realm));
  }
  std::string scope = ch.params.count("scope") ? ch.params["scope"] : "repository:" + repository_ + ":pull";
  std::string service = ch.params.count("service") ? ch.params["service"] : std::string();
  std::string token;
  std::string where = fmt::format("token request to {}", excerpt(realm, 256));
  for (unsigned attempt = 0;; ++attempt) {
    HttpRequest req;
    std::string form;
    // The token service is trusted as the endpoint is: the same CAs and client certificate.
    req.skip_verify = endpoints_[endpoint].skip_verify;
    req.ca_files = endpoints_[endpoint].ca_files;
    req.client_cert = endpoints_[endpoint].client_cert;
    req.client_key = endpoints_[endpoint].client_key;
    req.max_body = kMaxTokenBytes;
    req.deadline = std::min(stop.deadline, Clock::now() + kRequestTimeout);
    req.stop = stop.stop;
    if (!creds_.identity_token.empty()) {
      // OAuth2 refresh-token grant (docker's identity token), as containerd's docker resolver does.
      form = fmt::format("grant_type=refresh_token&refresh_token={}&service={}&scope={}&client_id=berthd",
                         url_encode(creds_.identity_token), url_encode(service), url_encode(scope));
      req.url = realm;
      req.post_form = &form;
    } else {
      req.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + "service=" + url_encode(service) +
                "&scope=" + url_encode(scope);
      if (!creds_.username.empty())
        req.headers.push_back("Authorization: Basic " + base64_encode(creds_.username + ":" + creds_.password));
    }
    HttpResponse r = http_request(req);
    if (r.stopped || Clock::now() >= stop.deadline) throw_stopped(stop, where);
    if (r.too_large) fail("{}: answer larger than {} bytes", where, kMaxTokenBytes);
    if ((!r.transport_ok || transient_status(r.status)) && attempt < retries_) {
      backoff(attempt, stop);
      continue;
    }
    if (!r.transport_ok) fail("{}: {}", where, r.error);
    if (r.status == 401 || r.status == 403)
      fail_code(EACCES, "{}: credentials rejected (HTTP {})", where, r.status);
    if (r.status != 200) fail("{}: HTTP {}", where, r.status);
    auto j = parse_untrusted_json(r.body, "token answer");
    if (j.is_object()) {
      if (auto t = j.find("token"); t != j.end() && t->is_string()) token = t->get<std::string>();
      if (auto t = j.find("access_token"); token.empty() && t != j.end() && t->is_string()) token = t->get<std::string>();
    }
    if (token.empty()) fail("{}: no token in the answer", where);
    if (token.find_first_of("\r\n") != std::string::npos) fail("{}: the token contains a line break", where);
    break;
  }
  std::lock_guard lk(mu_);
  auth_[endpoint] = "Bearer " + token;
  return true;
}

FetchedManifest RegistrySession::get_manifest(std::string_view object, const StopCheck& stop) {
  std::string path = fmt::format("/{}/manifests/{}", repository_, object);
  std::string errors;
  // The errno tells the daemon what kind of failure it was: every endpoint said 404
  // (ENOENT), one refused our credentials (EACCES), or something else (EIO).
  bool all_not_found = true, denied = false;
  // A tag is resolved, a digest pulled (containerd's capabilities): a pull-only mirror
  // serves content by digest but is never asked what a tag means.
  unsigned need = object.find(':') == std::string_view::npos ? kCapResolve : kCapPull;
  size_t last = endpoints_.size();
  for (size_t ep = 0; ep < endpoints_.size(); ++ep)
    if (endpoints_[ep].capabilities & need) last = ep;
  if (last == endpoints_.size())
    fail_code(EIO, "fetch manifest {}: no endpoint has the {} capability", object,
              need == kCapResolve ? "resolve" : "pull");
  for (size_t ep = 0; ep < endpoints_.size(); ++ep) {
    if (!(endpoints_[ep].capabilities & need)) continue;
    bool authorized = false;
    for (unsigned attempt = 0;; ++attempt) {
      HttpResponse r = request(ep, path, {kManifestAccept}, nullptr, 0, stop, false);
      std::string why;
      if (r.transport_ok && r.status == 401 && !authorized && (!r.www_authenticate.empty() || r.challenge_too_long)) {
        authorized = true;
        if (r.challenge_too_long)
          fail_code(EACCES, "{}{}: WWW-Authenticate challenge longer than {} bytes", endpoints_[ep].url(), path,
                    kMaxChallenge);
        if (with_context(fmt::format("{}{}", endpoints_[ep].url(), path),
                         [&] { return authorize(ep, r.www_authenticate, stop); }))
          continue;
      }
      if ((!r.transport_ok || transient_status(r.status)) && !r.too_large && attempt < retries_) {
        backoff(attempt, stop);
        continue;
      }
      if (r.transport_ok && r.status == 200) return FetchedManifest{std::move(r.body), r.content_type, ep};
      why = r.too_large ? fmt::format("manifest larger than {} bytes", kMaxManifestBytes) : describe(r);
      if (r.transport_ok && r.status == 404) why = "not found (HTTP 404)";
      if (r.transport_ok && (r.status == 401 || r.status == 403)) {
        why = fmt::format("unauthorized (HTTP {})", r.status);
        denied = true;
      }
      all_not_found = all_not_found && r.transport_ok && r.status == 404;
      errors += fmt::format("{}{}: {}; ", endpoints_[ep].url(), path, why);
      log::info("registry: {}{} failed ({}), {}", endpoints_[ep].url(), path, why,
                ep < last ? "trying the next endpoint" : "no endpoint left");
      break;
    }
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  fail_code(all_not_found ? ENOENT : denied ? EACCES : EIO, "fetch manifest {}: {}", object, errors);
}

void RegistrySession::get_blob(std::string_view digest, uint64_t expected_size, size_t preferred,
                               const BodySink& sink, const StopCheck& stop) {
  std::string path = fmt::format("/{}/blobs/{}", repository_, digest);
  std::vector<size_t> order;
  if (preferred < endpoints_.size() && (endpoints_[preferred].capabilities & kCapPull)) order.push_back(preferred);
  for (size_t i = 0; i < endpoints_.size(); ++i)
    if (i != preferred && (endpoints_[i].capabilities & kCapPull)) order.push_back(i);
  if (order.empty()) fail_code(EIO, "fetch blob {}: no endpoint has the pull capability", digest);
  uint64_t delivered = 0;
  std::string errors;
  for (size_t ep : order) {
    bool authorized = false;
    for (unsigned attempt = 0;; ++attempt) {
      uint64_t from = delivered;
      bool too_long = false;
      BodySink counted = [&](const char* d, size_t n) {
        if (delivered + n > expected_size) {  // longer than the descriptor says
          too_long = true;
          return false;
        }
        delivered += n;
        return sink(d, n);
      };
      HttpResponse r = request(ep, path, {}, &counted, from, stop, true);
      if (r.transport_ok && r.status == 401 && !authorized && !r.www_authenticate.empty()) {
        authorized = true;
        if (with_context(fmt::format("{}{}", endpoints_[ep].url(), path),
                         [&] { return authorize(ep, r.www_authenticate, stop); }))
          continue;
      }
      if (too_long) fail("blob {}: larger than its descriptor's {} bytes", digest, expected_size);
      if (r.aborted) fail("blob {}: transfer aborted", digest);
      if (r.transport_ok && (r.status == 200 || r.status == 206)) {
        if (delivered == expected_size) return;
        errors += fmt::format("{}{}: short body ({} of {} bytes); ", endpoints_[ep].url(), path, delivered,
                              expected_size);
      } else {
        errors += fmt::format("{}{}: {}; ", endpoints_[ep].url(), path, describe(r));
      }
      bool transient = !r.transport_ok || transient_status(r.status) || r.status == 200 || r.status == 206;
      if (transient && attempt < retries_) {
        backoff(attempt, stop);
        continue;
      }
      break;
    }
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  fail("fetch blob {}: {}", digest, bounded_message(errors, 2048));
}

} // namespace berth::image
