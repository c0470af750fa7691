// runtime.v1.RuntimeService: one file per RPC or small group of RPCs, as containerd's
// cri/server (sandbox_run.cpp, container_create.cpp, ...), over the shared state and
// operations of Runtime (runtime.hpp). Exec, Attach and PortForward belong to the
// streaming server and answer UNIMPLEMENTED until it exists.
#pragma once

#include "api.grpc.pb.h"
#include "cri/server/runtime.hpp"

namespace berth::cri {

class RuntimeServiceImpl final : public runtime::v1::RuntimeService::Service {
public:
  explicit RuntimeServiceImpl(Runtime& rt) : rt_(rt) {}

#define BERTH_CRI_CALL(Method, Request, Response) \
  grpc::Status Method(grpc::ServerContext*, const runtime::v1::Request*, runtime::v1::Response*) override;
  BERTH_CRI_CALL(Version, VersionRequest, VersionResponse)
  BERTH_CRI_CALL(RunPodSandbox, RunPodSandboxRequest, RunPodSandboxResponse)
  BERTH_CRI_CALL(StopPodSandbox, StopPodSandboxRequest, StopPodSandboxResponse)
  BERTH_CRI_CALL(RemovePodSandbox, RemovePodSandboxRequest, RemovePodSandboxResponse)
  BERTH_CRI_CALL(PodSandboxStatus, PodSandboxStatusRequest, PodSandboxStatusResponse)
  BERTH_CRI_CALL(ListPodSandbox, ListPodSandboxRequest, ListPodSandboxResponse)
  BERTH_CRI_CALL(CreateContainer, CreateContainerRequest, CreateContainerResponse)
  BERTH_CRI_CALL(StartContainer, StartContainerRequest, StartContainerResponse)
  BERTH_CRI_CALL(StopContainer, StopContainerRequest, StopContainerResponse)
  BERTH_CRI_CALL(RemoveContainer, RemoveContainerRequest, RemoveContainerResponse)
  BERTH_CRI_CALL(ListContainers, ListContainersRequest, ListContainersResponse)
  BERTH_CRI_CALL(ContainerStatus, ContainerStatusRequest, ContainerStatusResponse)
  BERTH_CRI_CALL(UpdateContainerResources, UpdateContainerResourcesRequest, UpdateContainerResourcesResponse)
  BERTH_CRI_CALL(ReopenContainerLog, ReopenContainerLogRequest, ReopenContainerLogResponse)
  BERTH_CRI_CALL(ExecSync, ExecSyncRequest, ExecSyncResponse)
  BERTH_CRI_CALL(Exec, ExecRequest, ExecResponse)
  BERTH_CRI_CALL(Attach, AttachRequest, AttachResponse)
  BERTH_CRI_CALL(PortForward, PortForwardRequest, PortForwardResponse)
  BERTH_CRI_CALL(ContainerStats, ContainerStatsRequest, ContainerStatsResponse)
  BERTH_CRI_CALL(ListContainerStats, ListContainerStatsRequest, ListContainerStatsResponse)
  BERTH_CRI_CALL(PodSandboxStats, PodSandboxStatsRequest, PodSandboxStatsResponse)
  BERTH_CRI_CALL(ListPodSandboxStats, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse)
  BERTH_CRI_CALL(UpdateRuntimeConfig, UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse)
  BERTH_CRI_CALL(Status, StatusRequest, StatusResponse)
  BERTH_CRI_CALL(CheckpointContainer, CheckpointContainerRequest, CheckpointContainerResponse)
  BERTH_CRI_CALL(ListMetricDescriptors, ListMetricDescriptorsRequest, ListMetricDescriptorsResponse)
  BERTH_CRI_CALL(ListPodSandboxMetrics, ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse)
  BERTH_CRI_CALL(RuntimeConfig, RuntimeConfigRequest, RuntimeConfigResponse)
#undef BERTH_CRI_CALL

  grpc::Status GetContainerEvents(grpc::ServerContext*, const runtime::v1::GetEventsRequest*,
                                  grpc::ServerWriter<runtime::v1::ContainerEventResponse>*) override;

private:
  Runtime& rt_;
};

} // namespace berth::cri
