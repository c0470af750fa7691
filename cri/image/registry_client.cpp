#include "cri/image/registry_client.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"

namespace berth::image {
namespace {

constexpr size_t kMaxManifestBytes = 4 << 20;
const char* kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

bool is_loopback(std::string_view domain) {
  std::string_view host = domain.substr(0, domain.rfind(':') == std::string_view::npos || domain.front() == '['
                                                   ? domain.size()
                                                   : domain.rfind(':'));
  return host == "localhost" || host.starts_with("127.") || host == "[::1]";
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n);
  return out;
}

std::string unbase64(std::string_view in) {
  std::string out(3 * (in.size() / 4) + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) fail("auth: invalid base64");
  while (!in.empty() && in.back() == '=') {  // EVP_DecodeBlock counts padding as zero bytes
    in.remove_suffix(1);
    --n;
  }
  out.resize(n);
  return out;
}

std::string url_encode(std::string_view s) {
  char* e = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

// Parses `Bearer realm="...",service="...",scope="..."` (or Basic) into scheme + params.
std::pair<std::string, std::map<std::string, std::string>> parse_challenge(const std::string& h) {
  std::map<std::string, std::string> params;
  size_t sp = h.find(' ');
  std::string scheme = h.substr(0, sp);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::regex kv(R"re((\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*)))re");
  if (sp != std::string::npos) {
    std::string rest = h.substr(sp + 1);
    for (auto it = std::sregex_iterator(rest.begin(), rest.end(), kv); it != std::sregex_iterator(); ++it)
      params[(*it)[1]] = (*it)[2].matched ? (*it)[2].str() : (*it)[3].str();
  }
  return {scheme, params};
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// TLS sessions and DNS answers shared by every handle of the process, so the download
// threads (one per blob) resume TLS sessions instead of full handshakes. Connections are
// not shared: libcurl does not support sharing them between concurrent threads (tried:
// two transfers ended up with each other's bodies, caught by the digest check).
class CurlShare {
public:
  CurlShare() : share_(curl_share_init()) {
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void* p) {
      static_cast<CurlShare*>(p)->locks_[d % kLocks].lock();
    });
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void* p) {
      static_cast<CurlShare*>(p)->locks_[d % kLocks].unlock();
    });
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  CURLSH* get() const { return share_; }

private:
  static constexpr int kLocks = 8;
  CURLSH* share_;
  std::mutex locks_[kLocks];
};

// One easy handle per thread, attached to the process-wide share. Its keep-alive
// connections are sockets a fork() child shares with the parent: a child that reused them
// would leave its half-read responses for the parent to take as its own. So a child
// (another pid) starts a fresh handle and abandons the inherited one, uncleaned (a cleanup
// could send a TLS close_notify on the parent's connection).
CURL* thread_handle() {
  struct Holder {
    CURL* h;
    pid_t pid;
    Holder() : h(curl_easy_init()), pid(::getpid()) {}
    ~Holder() {
      if (pid == ::getpid()) curl_easy_cleanup(h);
    }
  };
  curl_init_once();
  static CurlShare* share = new CurlShare();  // never freed: handles of exiting threads still use it
  thread_local Holder holder;
  if (holder.pid != ::getpid()) {
    holder.h = curl_easy_init();
    holder.pid = ::getpid();
  }
  if (!holder.h) fail("libcurl: cannot create a handle");
  curl_easy_reset(holder.h);
  curl_easy_setopt(holder.h, CURLOPT_SHARE, share->get());
  return holder.h;
}

bool transient_status(long status) { return status == 408 || status == 429 || status >= 500; }

void backoff(unsigned attempt) {
  std::this_thread::sleep_for(std::chrono::milliseconds(200) * (1u << std::min(attempt, 5u)));
}

} // namespace

std::vector<Endpoint> resolve_endpoints(const std::vector<RegistryHost>& hosts, std::string_view domain) {
  const RegistryHost* cfg = nullptr;
  for (auto& h : hosts)
    if (h.host == domain) cfg = &h;
  std::vector<Endpoint> out;
  if (cfg) {
    for (auto& m : cfg->mirrors) {
      std::string url = m.find("://") == std::string::npos ? "https://" + m : m;
      while (url.ends_with('/')) url.pop_back();
      if (url.ends_with("/v2")) url.resize(url.size() - 3);
      out.push_back({url, true, cfg->skip_verify, cfg->ca_file});
    }
  }
  std::string host = domain == "docker.io" ? "registry-1.docker.io" : std::string(domain);
  bool plain = cfg ? cfg->plain_http : is_loopback(domain);
  out.push_back({(plain ? "http://" : "https://") + host, false, cfg && cfg->skip_verify,
                 cfg ? cfg->ca_file : std::string()});
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
                                const AuthConfig& auth_in) {
  Credentials c;
  AuthConfig auth = auth_matches(auth_in.server_address, domain) ? auth_in : AuthConfig{};
  if (!auth.auth.empty()) {
    std::string decoded = unbase64(auth.auth);
    size_t colon = decoded.find(':');
    if (colon == std::string::npos) fail("auth for {}: \"auth\" is not base64 of user:password", domain);
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
  return c;
}

struct RegistrySession::Response {
  long status = 0;
  std::string content_type, www_authenticate, body;  // body only when no sink was given
  CURLcode curl = CURLE_OK;
  std::string error;
  bool aborted = false;  // the sink asked to stop
};

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

RegistrySession::Response RegistrySession::request(size_t endpoint, const std::string& path,
                                                   const std::vector<std::string>& headers, const BodySink& sink,
                                                   uint64_t range_from) {
  const Endpoint& ep = endpoints_[endpoint];
  CURL* h = thread_handle();
  Response r;
  struct Ctx {
    Response* r;
    const BodySink* sink;
    CURL* h;
    uint64_t skip;  // a range request answered with the whole body (200): drop what we have
  } ctx{&r, &sink, h, range_from};
  std::string url = path.starts_with("http") ? path : ep.base_url + path;
  curl_slist* list = nullptr;
  for (auto& hd : headers) list = curl_slist_append(list, hd.c_str());
  std::string auth = auth_header(endpoint);
  if (!auth.empty() && !path.starts_with("http")) list = curl_slist_append(list, ("Authorization: " + auth).c_str());
  std::string range = range_from ? fmt::format("{}-", range_from) : std::string();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a stalled transfer fails after 60 s
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "berthd/" BERTH_VERSION);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
  if (!range.empty()) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
  if (ep.skip_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!ep.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ep.ca_file.c_str());
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, +[](char* data, size_t, size_t n, void* p) -> size_t {
    auto* c = static_cast<Ctx*>(p);
    std::string_view line(data, n);
    size_t colon = line.find(':');
    if (line.starts_with("HTTP/")) {  // a new response (after a redirect): forget the previous headers
      c->r->content_type.clear();
      c->r->www_authenticate.clear();
    } else if (colon != std::string_view::npos) {
      std::string name(line.substr(0, colon));
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value(trim(line.substr(colon + 1)));
      if (name == "content-type") c->r->content_type = value.substr(0, value.find(';'));
      if (name == "www-authenticate") c->r->www_authenticate = value;
    }
    return n;
  });
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, +[](char* data, size_t, size_t n, void* p) -> size_t {
    auto* c = static_cast<Ctx*>(p);
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (!*c->sink || (status != 200 && status != 206)) {  // error bodies and manifests are kept
      if (c->r->body.size() + n > kMaxManifestBytes) return 0;
      c->r->body.append(data, n);
      return n;
    }
    if (status == 200 && c->skip) {
      size_t drop = static_cast<size_t>(std::min<uint64_t>(c->skip, n));
      c->skip -= drop;
      if (drop == n) return n;
      data += drop;
      n -= drop;
      if (!(*c->sink)(data, n)) {
        c->r->aborted = true;
        return 0;
      }
      return n + drop;
    }
    if (!(*c->sink)(data, n)) {
      c->r->aborted = true;
      return 0;
    }
    return n;
  });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
  r.curl = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  if (r.curl != CURLE_OK) r.error = errbuf[0] ? errbuf : curl_easy_strerror(r.curl);
  return r;
}

// Answers a 401 challenge: fetches a Bearer token (anonymous or with credentials) or sets
// basic auth. Returns false when the challenge cannot be met.
bool RegistrySession::authorize(size_t endpoint, const std::string& challenge) {
  auto [scheme, params] = parse_challenge(challenge);
  if (scheme == "basic") {
    if (creds_.username.empty()) return false;
    std::lock_guard lk(mu_);
    auth_[endpoint] = "Basic " + base64(creds_.username + ":" + creds_.password);
    return true;
  }
  if (scheme != "bearer" || params["realm"].empty()) return false;
  std::string scope = params.count("scope") ? params["scope"] : "repository:" + repository_ + ":pull";
  std::string url = params["realm"];
  std::string token;
  for (unsigned attempt = 0;; ++attempt) {
    std::vector<std::string> headers;
    Response r;
    BodySink none;
    if (!creds_.identity_token.empty()) {
      // OAuth2 refresh-token grant (docker's identity token), as containerd's docker resolver does.
      std::string form = fmt::format("grant_type=refresh_token&refresh_token={}&service={}&scope={}&client_id=berthd",
                                     url_encode(creds_.identity_token), url_encode(params["service"]), url_encode(scope));
      CURL* c = thread_handle();
      std::string body;
      curl_easy_setopt(c, CURLOPT_URL, url.c_str());
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, form.c_str());
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* d, size_t, size_t n, void* p) -> size_t {
        static_cast<std::string*>(p)->append(d, n);
        return n;
      });
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
      if (endpoints_[endpoint].skip_verify) curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      r.curl = curl_easy_perform(c);
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
      r.body = std::move(body);
    } else {
      std::string q = url + (url.find('?') == std::string::npos ? "?" : "&") + "service=" +
                      url_encode(params["service"]) + "&scope=" + url_encode(scope);
      if (!creds_.username.empty())
        headers.push_back("Authorization: Basic " + base64(creds_.username + ":" + creds_.password));
      r = request(endpoint, q, headers, none, 0);
    }
    if ((r.curl != CURLE_OK || transient_status(r.status)) && attempt < retries_) {
      backoff(attempt);
      continue;
    }
    if (r.curl != CURLE_OK) fail("token request to {}: {}", url, r.error);
    if (r.status == 401 || r.status == 403)
      fail_code(EACCES, "token request to {}: credentials rejected (HTTP {})", url, r.status);
    if (r.status != 200) fail("token request to {}: HTTP {}", url, r.status);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object()) {
      if (j.contains("token") && j["token"].is_string()) token = j["token"];
      if (token.empty() && j.contains("access_token") && j["access_token"].is_string()) token = j["access_token"];
    }
    if (token.empty()) fail("token request to {}: no token in the answer", url);
    break;
  }
  std::lock_guard lk(mu_);
  auth_[endpoint] = "Bearer " + token;
  return true;
}

FetchedManifest RegistrySession::get_manifest(std::string_view object) {
  std::string path = fmt::format("/v2/{}/manifests/{}", repository_, object);
  std::string errors;
  BodySink none;
  // The errno tells the daemon what kind of failure it was: every endpoint said 404
  // (ENOENT), one refused our credentials (EACCES), or something else (EIO).
  bool all_not_found = true, denied = false;
  for (size_t ep = 0; ep < endpoints_.size(); ++ep) {
    bool authorized = false;
    for (unsigned attempt = 0;; ++attempt) {
      Response r = request(ep, path, {kManifestAccept}, none, 0);
      if (r.curl == CURLE_OK && r.status == 401 && !authorized && !r.www_authenticate.empty()) {
        authorized = true;
        if (with_context(fmt::format("{}{}", endpoints_[ep].base_url, path),
                         [&] { return authorize(ep, r.www_authenticate); }))
          continue;
      }
      if ((r.curl != CURLE_OK || transient_status(r.status)) && attempt < retries_) {
        backoff(attempt);
        continue;
      }
      if (r.curl == CURLE_OK && r.status == 200) {
        FetchedManifest m{std::move(r.body), r.content_type, ep};
        return m;
      }
      std::string why = r.curl != CURLE_OK ? r.error : fmt::format("HTTP {}", r.status);
      if (r.curl == CURLE_OK && r.status == 404) why = "not found (HTTP 404)";
      if (r.curl == CURLE_OK && (r.status == 401 || r.status == 403)) {
        why = fmt::format("unauthorized (HTTP {})", r.status);
        denied = true;
      }
      all_not_found = all_not_found && r.curl == CURLE_OK && r.status == 404;
      errors += fmt::format("{}{}: {}; ", endpoints_[ep].base_url, path, why);
      log::info("registry: {}{} failed ({}), {}", endpoints_[ep].base_url, path, why,
                ep + 1 < endpoints_.size() ? "trying the next endpoint" : "no endpoint left");
      break;
    }
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  fail_code(all_not_found ? ENOENT : denied ? EACCES : EIO, "fetch manifest {}: {}", object, errors);
}

void RegistrySession::get_blob(std::string_view digest, uint64_t expected_size, size_t preferred,
                               const BodySink& sink) {
  std::string path = fmt::format("/v2/{}/blobs/{}", repository_, digest);
  std::vector<size_t> order{preferred};
  for (size_t i = 0; i < endpoints_.size(); ++i)
    if (i != preferred) order.push_back(i);
  uint64_t delivered = 0;
  std::string errors;
  for (size_t ep : order) {
    bool authorized = false;
    for (unsigned attempt = 0;; ++attempt) {
      uint64_t from = delivered;
      BodySink counted = [&](const char* d, size_t n) {
        if (delivered + n > expected_size) return false;  // longer than the descriptor says
        delivered += n;
        return sink(d, n);
      };
      Response r = request(ep, path, {}, counted, from);
      if (r.curl == CURLE_OK && r.status == 401 && !authorized && !r.www_authenticate.empty()) {
        authorized = true;
        if (with_context(fmt::format("{}{}", endpoints_[ep].base_url, path),
                         [&] { return authorize(ep, r.www_authenticate); }))
          continue;
      }
      if (r.aborted) {
        if (delivered >= expected_size) fail("blob {}: larger than its descriptor's {} bytes", digest, expected_size);
        fail("blob {}: transfer aborted", digest);
      }
      if (r.curl == CURLE_OK && (r.status == 200 || r.status == 206)) {
        if (delivered == expected_size) return;
        errors += fmt::format("{}{}: short body ({} of {} bytes); ", endpoints_[ep].base_url, path, delivered,
                             expected_size);
      } else {
        errors += fmt::format("{}{}: {}; ", endpoints_[ep].base_url, path,
                              r.curl != CURLE_OK ? r.error : fmt::format("HTTP {}", r.status));
      }
      bool transient = r.curl != CURLE_OK || transient_status(r.status) || r.status == 200 || r.status == 206;
      if (transient && attempt < retries_) {
        backoff(attempt);
        continue;
      }
      break;
    }
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  fail("fetch blob {}: {}", digest, errors);
}

} // namespace berth::image
