#include "ctl/lib/client.hpp"

#include <cstdlib>
#include <vector>

#include <fmt/format.h>

namespace berth::ctl {
namespace {

// As the kubelet allows: a node with many containers lists big.
constexpr int kMaxMessage = 16 * 1024 * 1024;

const char* code_name(grpc::StatusCode c) {
  static const char* names[] = {"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
                                "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
                                "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
                                "Unauthenticated"};
  auto i = static_cast<size_t>(c);
  return i < std::size(names) ? names[i] : "Unknown";
}

// crictl's rule: a bare path is a unix socket.
std::string normalize(std::string ep) {
  if (ep.find("://") == std::string::npos && !ep.empty() && ep[0] == '/') return "unix://" + ep;
  return ep;
}

std::shared_ptr<grpc::Channel> open_channel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

template <typename Items, typename IdOf>
std::string unique_match(const Items& items, IdOf id_of, const std::string& prefix, const char* what) {
  std::string found;
  for (const auto& it : items) {
    const std::string& id = id_of(it);
    if (id.compare(0, prefix.size(), prefix) != 0) continue;
    if (!found.empty() && found != id)
      throw std::runtime_error(fmt::format("{} id prefix {} is ambiguous: {} and {}", what, prefix, found, id));
    found = id;
  }
  return found.empty() ? prefix : found;
}

} // namespace

RpcError::RpcError(const char* method, const grpc::Status& s)
    : std::runtime_error(fmt::format("{}: {}: {}", method, code_name(s.error_code()), s.error_message())),
      code_(s.error_code()) {}

void check(const grpc::Status& s, const char* method) {
  if (!s.ok()) throw RpcError(method, s);
}

Client::Client(const GlobalOptions& opts)
    : timeout_(static_cast<int64_t>(opts.timeout_seconds * 1000)) {
  std::string rt = opts.runtime_endpoint;
  if (rt.empty()) {
    const char* env = std::getenv("CONTAINER_RUNTIME_ENDPOINT");
    rt = env && *env ? env : kDefaultEndpoint;
  }
  std::string im = opts.image_endpoint;
  if (im.empty()) {
    const char* env = std::getenv("IMAGE_SERVICE_ENDPOINT");
    im = env && *env ? env : rt;
  }
  runtime_endpoint_ = normalize(rt);
  auto rt_channel = open_channel(runtime_endpoint_);
  runtime_ = cri::RuntimeService::NewStub(rt_channel);
  images_ = cri::ImageService::NewStub(normalize(im) == runtime_endpoint_ ? rt_channel : open_channel(normalize(im)));
}

std::unique_ptr<grpc::ClientContext> Client::context(std::chrono::milliseconds timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (timeout.count() < 0) return ctx;
  ctx->set_deadline(std::chrono::system_clock::now() + (timeout.count() ? timeout : timeout_));
  return ctx;
}

std::string Client::resolve_container(const std::string& prefix) {
  if (prefix.size() >= 64 || prefix.empty()) return prefix;
  cri::ListContainersRequest req;
  cri::ListContainersResponse resp;
  BERTHCTL_CALL(*this, runtime, ListContainers, req, resp);
  return unique_match(resp.containers(), [](const cri::Container& c) -> const std::string& { return c.id(); },
                      prefix, "container");
}

std::string Client::resolve_pod(const std::string& prefix) {
  if (prefix.size() >= 64 || prefix.empty()) return prefix;
  cri::ListPodSandboxRequest req;
  cri::ListPodSandboxResponse resp;
  BERTHCTL_CALL(*this, runtime, ListPodSandbox, req, resp);
  return unique_match(resp.items(), [](const cri::PodSandbox& p) -> const std::string& { return p.id(); }, prefix,
                      "pod");
}

} // namespace berth::ctl
