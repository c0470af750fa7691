// berthctl's connection to a CRI v1 endpoint: one gRPC channel per service (the runtime
// and image endpoints may differ, as crictl allows), a deadline on every call, and failed
// calls turned into RpcError, which main() prints with the gRPC code and exits 1.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include <grpcpp/grpcpp.h>

#include "api.grpc.pb.h"

namespace berth::ctl {

namespace cri = runtime::v1;

inline constexpr const char* kDefaultEndpoint = "unix:///run/berthd/berthd.sock";

struct GlobalOptions {
  std::string runtime_endpoint;  // "" = $CONTAINER_RUNTIME_ENDPOINT, else berthd's socket
  std::string image_endpoint;    // "" = $IMAGE_SERVICE_ENDPOINT, else the runtime endpoint
  double timeout_seconds = 2;    // crictl's default
};

// A failed RPC: "<Method>: <CODE>: <message>". main() exits 1 on it.
class RpcError : public std::runtime_error {
public:
  RpcError(const char* method, const grpc::Status& s);
  grpc::StatusCode code() const noexcept { return code_; }

private:
  grpc::StatusCode code_;
};

// Throws RpcError unless s is OK.
void check(const grpc::Status& s, const char* method);

class Client {
public:
  explicit Client(const GlobalOptions& opts);

  cri::RuntimeService::Stub& runtime() { return *runtime_; }
  cri::ImageService::Stub& images() { return *images_; }

  // A context with the global deadline, or `timeout` when it is non-zero; a negative
  // timeout means no deadline (streams: logs -f, events, pull).
  std::unique_ptr<grpc::ClientContext> context(std::chrono::milliseconds timeout = {}) const;
  std::chrono::milliseconds timeout() const { return timeout_; }
  const std::string& runtime_endpoint() const { return runtime_endpoint_; }

  // The full id of the one container / pod whose id starts with `prefix` (crictl passes
  // ids through; berthctl accepts a unique prefix like docker and nerdctl). A full-length
  // or unmatched id is returned as given, so the runtime names what is missing.
  std::string resolve_container(const std::string& prefix);
  std::string resolve_pod(const std::string& prefix);

private:
  std::chrono::milliseconds timeout_;
  std::string runtime_endpoint_;
  std::unique_ptr<cri::RuntimeService::Stub> runtime_;
  std::unique_ptr<cri::ImageService::Stub> images_;
};

// Runs stub.method(ctx, req, &resp) with the client's default deadline; throws RpcError.
#define BERTHCTL_CALL(client, stub, method, req, resp)                  \
  do {                                                                  \
    auto ctx_ = (client).context();                                     \
    ::berth::ctl::check((client).stub().method(ctx_.get(), req, &resp), #method); \
  } while (0)

} // namespace berth::ctl
