#include "cri/server/runtime_service.hpp"

#include <fmt/format.h>

#include "cri/server/daemon_log.hpp"

namespace berth::cri {

// The kubelet's CRI API version that this server speaks (containerd answers the same).
constexpr const char* kKubeletApiVersion = "0.1.0";

grpc::Status RuntimeServiceImpl::Version(grpc::ServerContext*, const runtime::v1::VersionRequest*,
                                         runtime::v1::VersionResponse* resp) {
  resp->set_version(kKubeletApiVersion);
  resp->set_runtime_name("berth");
  resp->set_runtime_version(BERTH_VERSION);
  resp->set_runtime_api_version("v1");
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::not_built(const char* method) {
  dlog::debug("unimplemented call", {{"method", method}});
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      fmt::format("berthd: RuntimeService.{} is not implemented yet: this berthd serves "
                                  "images only (ImageService) and Version; pods and containers come later",
                                  method));
}

} // namespace berth::cri
