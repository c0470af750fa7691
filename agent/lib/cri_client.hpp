// A synchronous CRI v1 client on a unix socket. gRPC's channel reconnects on its own
// with exponential back-off (capped at 5 s here); every call has a deadline, and a
// failed call throws berth::Error "CRI <Method>: <code>: <message>" so the caller
// can retry at its next sync.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api.grpc.pb.h"

namespace berth::agent {

namespace cri = runtime::v1;

struct ExecResult {
  int exit_code = 0;
  std::string stdout_, stderr_;
};

class CriClient {
public:
  CriClient(const std::string& endpoint, std::chrono::milliseconds timeout);

  cri::VersionResponse version();
  // The runtime's conditions (RuntimeReady, NetworkReady), with a short deadline.
  cri::RuntimeStatus status();
  std::string run_pod_sandbox(const cri::PodSandboxConfig& config);
  void stop_pod_sandbox(const std::string& id);
  void remove_pod_sandbox(const std::string& id);
  cri::PodSandboxStatus pod_sandbox_status(const std::string& id);
  // timeout 0: the runtime request timeout.
  std::vector<cri::PodSandbox> list_pod_sandboxes(const std::string& pod_uid = "",
                                                  std::chrono::milliseconds timeout = {});
  std::string create_container(const std::string& sandbox_id, const cri::ContainerConfig& config,
                               const cri::PodSandboxConfig& sandbox_config);
  void start_container(const std::string& id);
  void stop_container(const std::string& id, int64_t timeout_seconds);
  void remove_container(const std::string& id);
  std::vector<cri::Container> list_containers(const std::string& pod_uid = "", std::chrono::milliseconds timeout = {});
  cri::ContainerStatus container_status(const std::string& id);
  ExecResult exec_sync(const std::string& id, const std::vector<std::string>& cmd, std::chrono::seconds timeout);
  std::optional<cri::Image> image_status(const std::string& image);
  std::string pull_image(const std::string& image, const cri::PodSandboxConfig& sandbox_config);
  // For log rotation and image garbage collection (log_rotation.hpp, image_gc.hpp).
  void reopen_container_log(const std::string& id);
  std::vector<cri::Image> list_images();
  void remove_image(const std::string& image);
  std::vector<cri::FilesystemUsage> image_fs_info();

  // True when the error of the last failed call was "not found" (gone already).
  static bool is_not_found(const std::exception& e);
  std::chrono::milliseconds request_timeout() const { return timeout_; }

private:
  void prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout);
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cri::RuntimeService::Stub> runtime_;
  std::unique_ptr<cri::ImageService::Stub> images_;
};

} // namespace berth::agent
