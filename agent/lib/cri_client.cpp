#include "agent/lib/cri_client.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "agent/lib/metrics.hpp"
#include "common/error.hpp"

namespace berth::agent {
namespace {

// Message sizes as the kubelet allows (16 MiB): a node with many containers lists big.
constexpr int kMaxMessage = 16 * 1024 * 1024;

void check(const grpc::Status& s, const char* method) {
  if (s.ok()) return;
  int err = s.error_code() == grpc::StatusCode::NOT_FOUND ? ENOENT
            : s.error_code() == grpc::StatusCode::UNAVAILABLE ? ECONNREFUSED
            : s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? ETIMEDOUT
                                                                   : 0;
  throw Error(err, fmt::format("CRI {}: code {}: {}", method, static_cast<int>(s.error_code()), s.error_message()));
}

} // namespace

CriClient::CriClient(const std::string& endpoint, std::chrono::milliseconds timeout) : timeout_(timeout) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  channel_ = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  runtime_ = cri::RuntimeService::NewStub(channel_);
  images_ = cri::ImageService::NewStub(channel_);
}

void CriClient::prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

bool CriClient::is_not_found(const std::exception& e) {
  auto* be = dynamic_cast<const Error*>(&e);
  return be && be->code() == ENOENT;
}

#define CRI_CALL(stub, method, req, resp, timeout)                                                   \
  do {                                                                                              \
    grpc::ClientContext ctx;                                                                        \
    prepare(ctx, timeout);                                                                          \
    RuntimeOperationTimer timer(#method);                                                           \
    grpc::Status status = stub->method(&ctx, req, &resp);                                           \
    timer.done(status.ok());                                                                        \
    check(status, #method);                                                                         \
  } while (0)

cri::VersionResponse CriClient::version() {
  cri::VersionRequest req;
  req.set_version("v1");
  cri::VersionResponse resp;
  CRI_CALL(runtime_, Version, req, resp, std::chrono::milliseconds(5000));
  return resp;
}

cri::RuntimeStatus CriClient::status() {
  cri::StatusRequest req;
  cri::StatusResponse resp;
  CRI_CALL(runtime_, Status, req, resp, std::min(timeout_, std::chrono::milliseconds(5000)));
  return resp.status();
}

std::string CriClient::run_pod_sandbox(const cri::PodSandboxConfig& config) {
  cri::RunPodSandboxRequest req;
  *req.mutable_config() = config;
  cri::RunPodSandboxResponse resp;
  CRI_CALL(runtime_, RunPodSandbox, req, resp, timeout_);
  return resp.pod_sandbox_id();
}

void CriClient::stop_pod_sandbox(const std::string& id) {
  cri::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(id);
  cri::StopPodSandboxResponse resp;
  CRI_CALL(runtime_, StopPodSandbox, req, resp, timeout_);
}

void CriClient::remove_pod_sandbox(const std::string& id) {
  cri::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(id);
  cri::RemovePodSandboxResponse resp;
  CRI_CALL(runtime_, RemovePodSandbox, req, resp, timeout_);
}

cri::PodSandboxStatus CriClient::pod_sandbox_status(const std::string& id) {
  cri::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(id);
  cri::PodSandboxStatusResponse resp;
  CRI_CALL(runtime_, PodSandboxStatus, req, resp, timeout_);
  return resp.status();
}

std::vector<cri::PodSandbox> CriClient::list_pod_sandboxes(const std::string& pod_uid, std::chrono::milliseconds timeout) {
  cri::ListPodSandboxRequest req;
  if (!pod_uid.empty()) (*req.mutable_filter()->mutable_label_selector())["io.kubernetes.pod.uid"] = pod_uid;
  cri::ListPodSandboxResponse resp;
  CRI_CALL(runtime_, ListPodSandbox, req, resp, timeout.count() ? timeout : timeout_);
  return {resp.items().begin(), resp.items().end()};
}

std::string CriClient::create_container(const std::string& sandbox_id, const cri::ContainerConfig& config,
                                        const cri::PodSandboxConfig& sandbox_config) {
  cri::CreateContainerRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  *req.mutable_config() = config;
  *req.mutable_sandbox_config() = sandbox_config;
  cri::CreateContainerResponse resp;
  CRI_CALL(runtime_, CreateContainer, req, resp, timeout_);
  return resp.container_id();
}

void CriClient::start_container(const std::string& id) {
  cri::StartContainerRequest req;
  req.set_container_id(id);
  cri::StartContainerResponse resp;
  CRI_CALL(runtime_, StartContainer, req, resp, timeout_);
}

void CriClient::stop_container(const std::string& id, int64_t timeout_seconds) {
  cri::StopContainerRequest req;
  req.set_container_id(id);
  req.set_timeout(timeout_seconds);
  cri::StopContainerResponse resp;
  // The runtime waits up to the grace period before it kills: allow for it.
  CRI_CALL(runtime_, StopContainer, req, resp, timeout_ + std::chrono::seconds(timeout_seconds));
}

void CriClient::remove_container(const std::string& id) {
  cri::RemoveContainerRequest req;
  req.set_container_id(id);
  cri::RemoveContainerResponse resp;
  CRI_CALL(runtime_, RemoveContainer, req, resp, timeout_);
}

std::vector<cri::Container> CriClient::list_containers(const std::string& pod_uid, std::chrono::milliseconds timeout) {
  cri::ListContainersRequest req;
  if (!pod_uid.empty()) (*req.mutable_filter()->mutable_label_selector())["io.kubernetes.pod.uid"] = pod_uid;
  cri::ListContainersResponse resp;
  CRI_CALL(runtime_, ListContainers, req, resp, timeout.count() ? timeout : timeout_);
  return {resp.containers().begin(), resp.containers().end()};
}

cri::ContainerStatus CriClient::container_status(const std::string& id) {
  cri::ContainerStatusRequest req;
  req.set_container_id(id);
  cri::ContainerStatusResponse resp;
  CRI_CALL(runtime_, ContainerStatus, req, resp, timeout_);
  return resp.status();
}

ExecResult CriClient::exec_sync(const std::string& id, const std::vector<std::string>& cmd, std::chrono::seconds timeout) {
  cri::ExecSyncRequest req;
  req.set_container_id(id);
  for (auto& c : cmd) req.add_cmd(c);
  req.set_timeout(timeout.count());
  cri::ExecSyncResponse resp;
  CRI_CALL(runtime_, ExecSync, req, resp, std::chrono::duration_cast<std::chrono::milliseconds>(timeout) + std::chrono::seconds(5));
  return {resp.exit_code(), resp.stdout(), resp.stderr()};
}

std::optional<cri::Image> CriClient::image_status(const std::string& image) {
  cri::ImageStatusRequest req;
  req.mutable_image()->set_image(image);
  cri::ImageStatusResponse resp;
  CRI_CALL(images_, ImageStatus, req, resp, timeout_);
  if (!resp.has_image() || resp.image().id().empty()) return std::nullopt;
  return resp.image();
}

std::string CriClient::pull_image(const std::string& image, const cri::PodSandboxConfig& sandbox_config) {
  cri::PullImageRequest req;
  req.mutable_image()->set_image(image);
  *req.mutable_sandbox_config() = sandbox_config;
  cri::PullImageResponse resp;
  CRI_CALL(images_, PullImage, req, resp, timeout_);
  return resp.image_ref();
}

void CriClient::reopen_container_log(const std::string& id) {
  cri::ReopenContainerLogRequest req;
  req.set_container_id(id);
  cri::ReopenContainerLogResponse resp;
  CRI_CALL(runtime_, ReopenContainerLog, req, resp, timeout_);
}

std::vector<cri::Image> CriClient::list_images() {
  cri::ListImagesRequest req;
  cri::ListImagesResponse resp;
  CRI_CALL(images_, ListImages, req, resp, timeout_);
  return {resp.images().begin(), resp.images().end()};
}

void CriClient::remove_image(const std::string& image) {
  cri::RemoveImageRequest req;
  req.mutable_image()->set_image(image);
  cri::RemoveImageResponse resp;
  CRI_CALL(images_, RemoveImage, req, resp, timeout_);
}

std::vector<cri::FilesystemUsage> CriClient::image_fs_info() {
  cri::ImageFsInfoRequest req;
  cri::ImageFsInfoResponse resp;
  CRI_CALL(images_, ImageFsInfo, req, resp, timeout_);
  return {resp.image_filesystems().begin(), resp.image_filesystems().end()};
}

} // namespace berth::agent
