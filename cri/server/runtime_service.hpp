// runtime.v1.RuntimeService: Version answers; the pod and container calls arrive
// with later issues and until then fail with UNIMPLEMENTED and a message naming
// the call, so clients (kubelet, crictl) report something a person can act on.
#pragma once

#include "api.grpc.pb.h"

namespace berth::cri {

class RuntimeServiceImpl final : public runtime::v1::RuntimeService::Service {
public:
  grpc::Status Version(grpc::ServerContext*, const runtime::v1::VersionRequest*,
                       runtime::v1::VersionResponse*) override;

#define BERTH_CRI_UNIMPLEMENTED(Method, Request, Response)                                          \
  grpc::Status Method(grpc::ServerContext*, const runtime::v1::Request*, runtime::v1::Response*) override { \
    return not_built(#Method);                                                                      \
  }
  BERTH_CRI_UNIMPLEMENTED(RunPodSandbox, RunPodSandboxRequest, RunPodSandboxResponse)
  BERTH_CRI_UNIMPLEMENTED(StopPodSandbox, StopPodSandboxRequest, StopPodSandboxResponse)
  BERTH_CRI_UNIMPLEMENTED(RemovePodSandbox, RemovePodSandboxRequest, RemovePodSandboxResponse)
  BERTH_CRI_UNIMPLEMENTED(PodSandboxStatus, PodSandboxStatusRequest, PodSandboxStatusResponse)
  BERTH_CRI_UNIMPLEMENTED(ListPodSandbox, ListPodSandboxRequest, ListPodSandboxResponse)
  BERTH_CRI_UNIMPLEMENTED(CreateContainer, CreateContainerRequest, CreateContainerResponse)
  BERTH_CRI_UNIMPLEMENTED(StartContainer, StartContainerRequest, StartContainerResponse)
  BERTH_CRI_UNIMPLEMENTED(StopContainer, StopContainerRequest, StopContainerResponse)
  BERTH_CRI_UNIMPLEMENTED(RemoveContainer, RemoveContainerRequest, RemoveContainerResponse)
  BERTH_CRI_UNIMPLEMENTED(ListContainers, ListContainersRequest, ListContainersResponse)
  BERTH_CRI_UNIMPLEMENTED(ContainerStatus, ContainerStatusRequest, ContainerStatusResponse)
  BERTH_CRI_UNIMPLEMENTED(UpdateContainerResources, UpdateContainerResourcesRequest, UpdateContainerResourcesResponse)
  BERTH_CRI_UNIMPLEMENTED(ReopenContainerLog, ReopenContainerLogRequest, ReopenContainerLogResponse)
  BERTH_CRI_UNIMPLEMENTED(ExecSync, ExecSyncRequest, ExecSyncResponse)
  BERTH_CRI_UNIMPLEMENTED(Exec, ExecRequest, ExecResponse)
  BERTH_CRI_UNIMPLEMENTED(Attach, AttachRequest, AttachResponse)
  BERTH_CRI_UNIMPLEMENTED(PortForward, PortForwardRequest, PortForwardResponse)
  BERTH_CRI_UNIMPLEMENTED(ContainerStats, ContainerStatsRequest, ContainerStatsResponse)
  BERTH_CRI_UNIMPLEMENTED(ListContainerStats, ListContainerStatsRequest, ListContainerStatsResponse)
  BERTH_CRI_UNIMPLEMENTED(PodSandboxStats, PodSandboxStatsRequest, PodSandboxStatsResponse)
  BERTH_CRI_UNIMPLEMENTED(ListPodSandboxStats, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse)
  BERTH_CRI_UNIMPLEMENTED(UpdateRuntimeConfig, UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse)
  BERTH_CRI_UNIMPLEMENTED(Status, StatusRequest, StatusResponse)
  BERTH_CRI_UNIMPLEMENTED(CheckpointContainer, CheckpointContainerRequest, CheckpointContainerResponse)
  BERTH_CRI_UNIMPLEMENTED(ListMetricDescriptors, ListMetricDescriptorsRequest, ListMetricDescriptorsResponse)
  BERTH_CRI_UNIMPLEMENTED(ListPodSandboxMetrics, ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse)
  BERTH_CRI_UNIMPLEMENTED(RuntimeConfig, RuntimeConfigRequest, RuntimeConfigResponse)
#undef BERTH_CRI_UNIMPLEMENTED

  grpc::Status GetContainerEvents(grpc::ServerContext*, const runtime::v1::GetEventsRequest*,
                                  grpc::ServerWriter<runtime::v1::ContainerEventResponse>*) override {
    return not_built("GetContainerEvents");
  }

private:
  static grpc::Status not_built(const char* method);
};

} // namespace berth::cri
