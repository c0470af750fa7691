// Version, Status, UpdateRuntimeConfig, RuntimeConfig and CheckpointContainer: what the
// runtime is and whether it is ready.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/runtime_service.hpp"

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

grpc::Status RuntimeServiceImpl::Status(grpc::ServerContext*, const runtime::v1::StatusRequest* req,
                                        runtime::v1::StatusResponse* resp) {
  return guarded("Status", [&] {
    auto* runtime_ready = resp->mutable_status()->add_conditions();
    runtime_ready->set_type("RuntimeReady");
    runtime_ready->set_status(true);
    auto* network_ready = resp->mutable_status()->add_conditions();
    network_ready->set_type("NetworkReady");
    std::string why;
    bool net = rt_.network().ready(&why);
    network_ready->set_status(net);
    if (!net) {
      network_ready->set_reason("NetworkPluginNotReady");
      network_ready->set_message(fmt::format("Network plugin returns error: cni plugin not initialized: {}", why));
    }
    for (const auto& name : rt_.handler_names()) {
      auto* h = resp->add_runtime_handlers();
      h->set_name(name == rt_.config().default_handler ? "" : name);
      h->mutable_features()->set_recursive_read_only_mounts(true);
      h->mutable_features()->set_user_namespaces(false);
      if (name == rt_.config().default_handler) {
        auto* named = resp->add_runtime_handlers();
        *named = *h;
        named->set_name(name);
      }
    }
    if (req->verbose()) {
      const Config& c = rt_.config();
      json info = {{"cgroupDriver", c.cgroup_driver == CgroupDriver::systemd ? "systemd" : "cgroupfs"},
                   {"defaultRuntimeHandler", c.default_handler},
                   {"runtimeHandlers", rt_.handler_names()},
                   {"cniConfDir", c.cni_conf_dir},
                   {"cniBinDirs", c.cni_bin_dirs},
                   {"stateDir", c.state_dir},
                   {"root", c.root},
                   {"podCIDR", rt_.pod_cidr()}};
      (*resp->mutable_info())["config"] = info.dump();
      (*resp->mutable_info())["lastCNILoadStatus"] = net ? "OK" : why;
    }
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::UpdateRuntimeConfig(grpc::ServerContext*,
                                                     const runtime::v1::UpdateRuntimeConfigRequest* req,
                                                     runtime::v1::UpdateRuntimeConfigResponse*) {
  return guarded("UpdateRuntimeConfig", [&] {
    std::string cidr = req->runtime_config().network_config().pod_cidr();
    if (cidr.size() > 256) fail_code(EINVAL, "runtime_config.network_config.pod_cidr: too long");
    if (cidr != rt_.pod_cidr()) dlog::info("pod CIDR updated", {{"pod_cidr", cidr}});
    rt_.set_pod_cidr(cidr);
    return grpc::Status::OK;
  });
}

grpc::Status RuntimeServiceImpl::RuntimeConfig(grpc::ServerContext*, const runtime::v1::RuntimeConfigRequest*,
                                               runtime::v1::RuntimeConfigResponse* resp) {
  resp->mutable_linux()->set_cgroup_driver(rt_.config().cgroup_driver == CgroupDriver::systemd ? runtime::v1::SYSTEMD
                                                                                                : runtime::v1::CGROUPFS);
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::CheckpointContainer(grpc::ServerContext*,
                                                     const runtime::v1::CheckpointContainerRequest*,
                                                     runtime::v1::CheckpointContainerResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "CheckpointContainer: berthd does not checkpoint containers (it would need CRIU, which "
                      "berth does not drive)");
}

} // namespace berth::cri
