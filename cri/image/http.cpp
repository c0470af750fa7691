#include "cri/image/http.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <mutex>

#include <fmt/format.h>

#include "common/curl_lazy.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/pull_libraries.hpp"
#include "cri/image/registry_hosts.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {
namespace {

using Clock = std::chrono::steady_clock;

constexpr long kConnectTimeoutMs = 30'000;
constexpr long kLowSpeedBytes = 1024;  // bytes/s ...
constexpr long kLowSpeedSeconds = 60;  // ... for this long: the transfer is stalled
constexpr size_t kMaxIdleHandles = 8;
constexpr size_t kMaxCaFileBytes = 4 << 20;  // a CA bundle (Debian's whole one is 200 KiB)

// Idle easy handles (each keeps its keep-alive connections) and one share for TLS
// sessions and DNS answers, so the download threads resume TLS sessions instead of full
// handshakes. Connections are not shared: libcurl does not support sharing them between
// concurrent threads (tried: two transfers ended up with each other's bodies, caught by
// the digest check). A fork() child abandons the parent's handles and share unused (their
// sockets are the parent's; a cleanup could send a TLS close_notify on them).
struct Pool {
  std::mutex mu;
  pid_t pid = 0;
  std::vector<CURL*> idle;
  unsigned out = 0;
  CURLSH* share = nullptr;
  std::mutex locks[8];
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: handles may be returned during exit
  return *p;
}

class Handle {
public:
  explicit Handle(const CurlApi& c) : c_(c) {
    Pool& p = pool();
    std::lock_guard lk(p.mu);
    if (p.pid != ::getpid()) {
      p.idle.clear();
      p.share = nullptr;
      p.out = 0;
      p.pid = ::getpid();
    }
    if (!p.share) {
      p.share = c.share_init();
      if (p.share) {
        c.share_setopt(p.share, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void* u) {
          static_cast<Pool*>(u)->locks[d % 8].lock();
        });
        c.share_setopt(p.share, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void* u) {
          static_cast<Pool*>(u)->locks[d % 8].unlock();
        });
        c.share_setopt(p.share, CURLSHOPT_USERDATA, &p);
        c.share_setopt(p.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        c.share_setopt(p.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
      }
    }
    if (!p.idle.empty()) {
      h_ = p.idle.back();
      p.idle.pop_back();
    } else {
      h_ = c.easy_init();
    }
    if (h_) ++p.out;
    share_ = p.share;
    pid_ = p.pid;
  }
  ~Handle() {
    if (!h_) return;
    Pool& p = pool();
    std::lock_guard lk(p.mu);
    if (p.pid != pid_) return;  // a fork child's copy: abandoned
    --p.out;
    if (!discard_ && p.idle.size() < kMaxIdleHandles) p.idle.push_back(h_);
    else c_.easy_cleanup(h_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  CURL* get() const { return h_; }
  CURLSH* share() const { return share_; }
  // Not pooled again: its cleanup closes its connections now. A transfer given up midway
  // can leave its connection open in the handle's cache (seen with libcurl 7.88: a blob
  // cancelled with its pull kept streaming from the registry until the handle's reuse).
  void discard() { discard_ = true; }

private:
  const CurlApi& c_;
  CURL* h_ = nullptr;
  CURLSH* share_ = nullptr;
  pid_t pid_ = 0;
  bool discard_ = false;
};

struct Ctx {
  const CurlApi* c;
  const HttpRequest* req;
  HttpResponse* r;
  CURL* h;
  uint64_t skip;  // a range request answered with the whole body (200): drop what we have
  bool deadline_hit = false;
};

size_t on_header(char* data, size_t, size_t n, void* p) {
  auto* ctx = static_cast<Ctx*>(p);
  std::string_view line(data, n);
  size_t colon = line.find(':');
  if (line.starts_with("HTTP/")) {  // a new response (after a redirect): forget the previous headers
    ctx->r->content_type.clear();
    ctx->r->www_authenticate.clear();
    ctx->r->challenge_too_long = false;
  } else if (colon != std::string_view::npos) {
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    auto is = [&](std::string_view want) {
      if (name.size() != want.size()) return false;
      for (size_t i = 0; i < want.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(name[i])) != want[i]) return false;
      return true;
    };
    if (is("content-type")) ctx->r->content_type = std::string(value.substr(0, std::min<size_t>(value.find(';'), 256)));
    if (is("www-authenticate")) {
      ctx->r->challenge_too_long = value.size() > kMaxChallenge;
      ctx->r->www_authenticate = ctx->r->challenge_too_long ? std::string() : std::string(value);
    }
  }
  return n;
}

size_t on_body(char* data, size_t, size_t n, void* p) {
  auto* ctx = static_cast<Ctx*>(p);
  HttpResponse& r = *ctx->r;
  long status = 0;
  ctx->c->easy_getinfo(ctx->h, CURLINFO_RESPONSE_CODE, &status);
  const BodySink* sink = ctx->req->sink;
  if (!sink || !*sink || (status != 200 && status != 206)) {  // error bodies, manifests, tokens
    if (r.body.size() + n > ctx->req->max_body) {
      r.too_large = true;
      return 0;
    }
    r.body.append(data, n);
    return n;
  }
  size_t dropped = 0;
  if (status == 200 && ctx->skip) {
    dropped = static_cast<size_t>(std::min<uint64_t>(ctx->skip, n));
    ctx->skip -= dropped;
    if (dropped == n) return n;
  }
  if (!(*sink)(data + dropped, n - dropped)) {
    r.aborted = true;
    return 0;
  }
  return n;
}

int on_progress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ctx = static_cast<Ctx*>(p);
  if (Clock::now() >= ctx->req->deadline) {
    ctx->deadline_hit = true;
    return 1;
  }
  if (ctx->req->stop && ctx->req->stop()) {
    ctx->r->stopped = true;
    return 1;
  }
  return 0;
}

// libcurl (7.88) opens its sockets without SOCK_CLOEXEC: a process spawned during a
// download (berthd runs CNI plugins and the OCI runtime while pulls go on) would inherit
// the registry connection and hold it open after the transfer is given up, so the
// registry of a cancelled pull would go on sending into a socket nobody reads.
curl_socket_t open_socket(void*, curlsocktype, curl_sockaddr* a) {
  return ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

} // namespace

std::string url_encode(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

HttpResponse http_request(const HttpRequest& req) {
  HttpResponse r;
  auto now = Clock::now();
  if (now >= req.deadline) {
    r.timed_out = true;
    r.error = "deadline passed before the request";
    return r;
  }
  if (req.stop && req.stop()) {
    r.stopped = true;
    r.error = "cancelled";
    return r;
  }
  std::string ca_blob;  // several CA bundles: one PEM blob
  if (req.ca_files.size() > 1) {
    try {
      for (auto& f : req.ca_files) {
        auto pem = read_config_file(f, kMaxCaFileBytes);
        if (!pem) fail_code(ENOENT, "CA file {}: no such file", f);
        ca_blob += *pem + "\n";
      }
    } catch (const std::exception& e) {
      r.error = bounded_message(e.what(), 512);
      return r;
    }
  }
  const CurlApi& c = CurlLibrary::instance().api();
  Handle handle(c);
  CURL* h = handle.get();
  if (!h) {
    r.error = "libcurl: cannot create a handle";
    return r;
  }
  c.easy_reset(h);
  if (handle.share()) c.easy_setopt(h, CURLOPT_SHARE, handle.share());
  Ctx ctx{&c, &req, &r, h, req.range_from};
  curl_slist* list = nullptr;
  for (auto& hd : req.headers) list = c.slist_append(list, hd.c_str());
  std::string range = req.range_from ? fmt::format("{}-", req.range_from) : std::string();
  long long remaining_ms = std::chrono::duration_cast<std::chrono::milliseconds>(req.deadline - now).count();
  long total_ms = static_cast<long>(std::min<long long>(remaining_ms, LONG_MAX));
  c.easy_setopt(h, CURLOPT_URL, req.url.c_str());
  c.easy_setopt(h, CURLOPT_HTTPHEADER, list);
  c.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  c.easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  c.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  c.easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  c.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  c.easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
  c.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, std::min(kConnectTimeoutMs, total_ms));
  c.easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
  c.easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, kLowSpeedBytes);
  c.easy_setopt(h, CURLOPT_LOW_SPEED_TIME, kLowSpeedSeconds);
  c.easy_setopt(h, CURLOPT_USERAGENT, "berthd/" BERTH_VERSION);
  c.easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
  if (!req.sink) c.easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(req.max_body));
  if (!range.empty()) c.easy_setopt(h, CURLOPT_RANGE, range.c_str());
  if (req.post_form) {
    c.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.post_form->size()));
    c.easy_setopt(h, CURLOPT_POSTFIELDS, req.post_form->c_str());
  }
  if (req.skip_verify) {
    c.easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    c.easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  // Extra CAs add to the system's: Debian's libcurl keeps its CA path (/etc/ssl/certs)
  // when CAINFO names another bundle. Several bundles go in as one blob.
  if (req.ca_files.size() == 1) {
    c.easy_setopt(h, CURLOPT_CAINFO, req.ca_files[0].c_str());
  } else if (req.ca_files.size() > 1) {
    curl_blob blob{ca_blob.data(), ca_blob.size(), CURL_BLOB_COPY};
    c.easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (!req.client_cert.empty()) {
    c.easy_setopt(h, CURLOPT_SSLCERT, req.client_cert.c_str());
    c.easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    c.easy_setopt(h, CURLOPT_SSLKEY, (req.client_key.empty() ? req.client_cert : req.client_key).c_str());
    c.easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  char errbuf[CURL_ERROR_SIZE] = {};
  c.easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  c.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  c.easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
  c.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  c.easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
  c.easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  c.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  c.easy_setopt(h, CURLOPT_XFERINFODATA, &ctx);
  CURLcode rc = c.easy_perform(h);
  c.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_off_t lookup_us = 0;
  c.easy_getinfo(h, CURLINFO_NAMELOOKUP_TIME_T, &lookup_us);
  c.easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  c.easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  c.slist_free_all(list);
  r.transport_ok = rc == CURLE_OK;
  if (rc == CURLE_OPERATION_TIMEDOUT || ctx.deadline_hit) r.timed_out = true;
  if (rc == CURLE_FILESIZE_EXCEEDED) r.too_large = true;
  if (!r.transport_ok) {
    handle.discard();
    if (r.too_large) r.error = fmt::format("answer larger than {} bytes", req.max_body);
    else if (ctx.deadline_hit) r.error = "deadline exceeded";
    else if (r.stopped) r.error = "cancelled";
    else r.error = bounded_message(errbuf[0] ? errbuf : c.easy_strerror(rc), 512);
    // A transfer given up while its name was being resolved leaves libcurl's resolver
    // thread running (detached) in the library: keep it loaded until that is surely over.
    if (lookup_us == 0 && (r.timed_out || r.stopped)) PullLibraries::instance().hold(std::chrono::seconds(120));
  }
  return r;
}

bool http_shutdown() {
  Pool& p = pool();
  std::lock_guard lk(p.mu);
  if (p.pid != ::getpid()) {  // a fork child: nothing of the parent's may be touched
    p.idle.clear();
    p.share = nullptr;
    p.out = 0;
    p.pid = ::getpid();
    return true;
  }
  if (p.out > 0) return false;
  const CurlApi& c = CurlLibrary::instance().api();
  for (CURL* h : p.idle) c.easy_cleanup(h);
  p.idle.clear();
  if (p.share) c.share_cleanup(p.share);
  p.share = nullptr;
  return true;
}

} // namespace berth::image
