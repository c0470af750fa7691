// GetContainerEvents: a server stream of lifecycle events for the kubelet's evented
// PLEG. Each call holds one handler thread while it lasts; it ends when the client goes,
// when berthd shuts down, or when the client fell so far behind that events were lost.
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {

grpc::Status RuntimeServiceImpl::GetContainerEvents(grpc::ServerContext* ctx, const runtime::v1::GetEventsRequest*,
                                                    grpc::ServerWriter<runtime::v1::ContainerEventResponse>* writer) {
  auto sub = rt_.events().subscribe();
  struct Unsubscribe {
    EventBus& bus;
    std::shared_ptr<EventBus::Subscription> sub;
    ~Unsubscribe() { bus.unsubscribe(sub); }
  } unsubscribe{rt_.events(), sub};
  while (!ctx->IsCancelled() && !rt_.stopping()) {
    auto ev = sub->next(std::chrono::milliseconds(500));
    if (sub->dropped())
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "GetContainerEvents: the client fell behind and events were lost; relist and subscribe again");
    if (ev && !writer->Write(*ev)) break;
  }
  return grpc::Status::OK;
}

} // namespace berth::cri
