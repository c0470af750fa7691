#include "agent/lib/probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <cstring>
#include <future>

#include <fmt/format.h>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "agent/lib/curl_lazy.hpp"
#include "common/fd.hpp"

namespace berth::agent {

const char* probe_kind_name(ProbeKind k) {
  switch (k) {
  case ProbeKind::startup: return "Startup";
  case ProbeKind::liveness: return "Liveness";
  case ProbeKind::readiness: return "Readiness";
  }
  return "";
}

ProbeTracker::ProbeTracker(ProbeKind kind, const Probe& probe, Clock::time_point container_started)
    : kind_(kind), probe_(probe) {
  result_ = kind == ProbeKind::readiness ? ProbeResult::failure
            : kind == ProbeKind::liveness ? ProbeResult::success
                                          : ProbeResult::unknown;
  next_run_ = container_started + std::chrono::seconds(probe.initial_delay_seconds);
}

bool ProbeTracker::record(ProbeResult raw, Clock::time_point now) {
  next_run_ = now + std::chrono::seconds(probe_.period_seconds);
  if (raw == last_raw_) {
    run_++;
  } else {
    last_raw_ = raw;
    run_ = 1;
  }
  if ((raw == ProbeResult::failure && run_ < probe_.failure_threshold) ||
      (raw == ProbeResult::success && run_ < probe_.success_threshold))
    return false;
  bool changed = raw != result_;
  result_ = raw;
  return changed;
}

namespace {

std::string host_for_url(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

size_t discard_body(char*, size_t size, size_t n, void*) { return size * n; }

// Go prints errno texts in lower case ("connection refused"); probe messages follow the kubelet.
std::string errno_text(int err) {
  std::string s = strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

} // namespace

ProbeOutcome run_http_get(const HttpGetAction& a, const std::string& host, std::chrono::milliseconds timeout) {
  std::string url = fmt::format("{}://{}:{}{}", a.scheme == "HTTPS" ? "https" : "http",
                                host_for_url(a.host.empty() ? host : a.host), a.port, a.path);
  std::string load_error;
  const CurlApi* c = curl_api(load_error);
  if (!c) return {ProbeResult::failure, load_error};
  CURL* curl = c->easy_init();
  if (!curl) return {ProbeResult::failure, "curl_easy_init failed"};
  struct curl_slist* headers = nullptr;
  bool user_agent = false, accept = false;
  for (auto& [name, value] : a.headers) {
    headers = c->slist_append(headers, fmt::format("{}: {}", name, value).c_str());
    if (strcasecmp(name.c_str(), "User-Agent") == 0) user_agent = true;
    if (strcasecmp(name.c_str(), "Accept") == 0) accept = true;
  }
  if (!user_agent) headers = c->slist_append(headers, "User-Agent: kube-probe/1.26");
  if (!accept) headers = c->slist_append(headers, "Accept: */*");
  c->easy_setopt(curl, CURLOPT_URL, url.c_str());
  c->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  c->easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  c->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  c->easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
  // The kubelet does not verify probe certificates.
  c->easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
  c->easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  c->easy_setopt(curl, CURLOPT_PROXY, "");
  CURLcode rc = c->easy_perform(curl);
  long code = 0;
  c->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  c->slist_free_all(headers);
  c->easy_cleanup(curl);
  if (rc != CURLE_OK) return {ProbeResult::failure, fmt::format("Get \"{}\": {}", url, c->easy_strerror(rc))};
  if (code >= 200 && code < 400) return {ProbeResult::success, ""};
  return {ProbeResult::failure, fmt::format("HTTP probe failed with statuscode: {}", code)};
}

ProbeOutcome run_tcp_socket(const std::string& host, int port, std::chrono::milliseconds timeout) {
  struct addrinfo hints = {}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0)
    return {ProbeResult::failure, fmt::format("dial tcp {}:{}: {}", host, port, gai_strerror(rc))};
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return {ProbeResult::failure, fmt::format("socket: {}", strerror(errno))};
  if (::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS)
    return {ProbeResult::failure, fmt::format("dial tcp {}:{}: {}", host, port, errno_text(errno))};
  struct pollfd p = {fd.get(), POLLOUT, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n == 0) return {ProbeResult::failure, fmt::format("dial tcp {}:{}: i/o timeout", host, port)};
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (n < 0 || err != 0) return {ProbeResult::failure, fmt::format("dial tcp {}:{}: {}", host, port, errno_text(err ? err : errno))};
  return {ProbeResult::success, ""};
}

ProbeOutcome run_grpc(const std::string& host, int port, const std::string& service, std::chrono::milliseconds timeout) {
  // grpc.health.v1.Health/Check by hand: HealthCheckRequest{string service = 1} and
  // HealthCheckResponse{enum status = 1}, SERVING = 1. Two fields do not need a .proto.
  std::string req;
  if (!service.empty()) {
    req += '\x0a';
    size_t len = service.size();
    do {
      req += static_cast<char>((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
      len >>= 7;
    } while (len);
    req += service;
  }
  auto channel = grpc::CreateChannel(fmt::format("{}:{}", host_for_url(host), port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok())
    return {ProbeResult::failure, fmt::format("rpc error: code = {} desc = {}", static_cast<int>(status.error_code()), status.error_message())};
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string body;
  for (auto& s : slices) body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  int serving = 0; // proto3 omits the default (UNKNOWN = 0)
  if (body.size() >= 2 && body[0] == '\x08') serving = static_cast<unsigned char>(body[1]);
  if (serving == 1) return {ProbeResult::success, ""};
  return {ProbeResult::failure, fmt::format("service unhealthy (responded with status {})", serving)};
}

} // namespace berth::agent
