// CreateContainer: a record, a writable snapshot over the image mounted at the bundle's
// rootfs, and config.json. No process yet: as with containerd, the shim and the OCI
// runtime's create run at StartContainer, which keeps this call to file-system work.
#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/pod/rootfs.hpp"
#include "cri/pod/user_lookup.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/pod_config.hpp"
#include "cri/server/runtime_service.hpp"

namespace berth::cri {
namespace {

class ContainerUndo {
public:
  ContainerUndo(Runtime& rt, ContainerPtr c) : rt_(rt), c_(std::move(c)) {}
  ~ContainerUndo() {
    if (!c_) return;
    try {
      ContainerRecord rec;
      {
        std::lock_guard lk(c_->mu);
        rec = c_->rec;
      }
      try {
        rt_.release_container_resources(rec);
      } catch (const std::exception& e) {
        dlog::error("undo failed container: something is left behind", {{"id", c_->id()}, {"error", e.what()}});
      }
      rt_.drop(c_);
    } catch (const std::exception& e) {
      dlog::error("undo failed container", {{"id", c_->id()}, {"error", e.what()}});
    }
  }
  void dismiss() { c_.reset(); }

private:
  Runtime& rt_;
  ContainerPtr c_;
};

image::ImageRecord resolve_image(image::ImageStore& images, const std::string& ref) {
  if (auto rec = images.find(ref)) return *rec;
  std::string normalized;
  try {
    normalized = image::normalize_reference(ref);
  } catch (const Error&) {
    fail_code(ENOENT, "image \"{}\" not found", ref.substr(0, 256));
  }
  if (auto rec = images.find(normalized)) return *rec;
  fail_code(ENOENT, "image \"{}\" not found: pull it first", ref.substr(0, 256));
}

std::string target_pidns(Runtime& rt, const runtime::v1::ContainerConfig& config) {
  const auto& ns = config.linux().security_context().namespace_options();
  if (ns.pid() != runtime::v1::TARGET) return "";
  ContainerPtr target = rt.find_container(ns.target_id());
  if (!target)
    fail_code(ENOENT, "config.linux.security_context.namespace_options.target_id: container \"{}\" not found",
              ns.target_id().substr(0, 128));
  std::lock_guard lk(target->mu);
  if (target->rec.phase != ContainerPhase::running || target->rec.pid <= 0)
    fail_code(kWrongState, "config.linux.security_context.namespace_options.target_id: container {} is not running",
              target->id());
  return fmt::format("/proc/{}/ns/pid", target->rec.pid);
}

} // namespace

grpc::Status RuntimeServiceImpl::CreateContainer(grpc::ServerContext*, const runtime::v1::CreateContainerRequest* req,
                                                 runtime::v1::CreateContainerResponse* resp) {
  return guarded("CreateContainer", [&] {
    const auto& config = req->config();
    validate_container_config(config);
    SandboxPtr s = rt_.sandbox(req->pod_sandbox_id());
    std::shared_lock pod_op(s->op);
    SandboxRecord pod;
    {
      std::lock_guard lk(s->mu);
      pod = s->rec;
    }
    if (pod.phase != SandboxPhase::ready)
      fail_code(kWrongState, "pod sandbox {} is not ready (phase {})", pod.id, phase_name(pod.phase));
    image::ImageRecord img = resolve_image(rt_.images(), config.image().image());
    ImageConfig image_config = with_context(fmt::format("image {} config", img.id), [&] {
      return parse_image_config(img.config_json);
    });

    ContainerRecord rec;
    rec.id = new_id();
    rec.sandbox_id = pod.id;
    rec.name = container_name(config.metadata(), pod.config.metadata());
    rec.config = config;
    rec.created_ns = now_ns();
    rec.image_id = img.id;
    rec.image_ref = img.repo_digests.empty() ? img.id : img.repo_digests[0];
    rec.image_name = img.repo_tags.empty() ? config.image().image() : img.repo_tags[0];
    rec.bundle = rt_.bundle_dir(rec.id);
    if (!pod.config.log_directory().empty() && !config.log_path().empty())
      rec.log_path = path_join(pod.config.log_directory(), config.log_path());
    rec.cgroups_path = container_cgroups_path(rt_.config().cgroup_driver, pod.cgroup_parent, rec.id);
    rec.stop_signal = parse_stop_signal(image_config.stop_signal);
    auto c = std::make_shared<Container>(std::move(rec));
    rt_.add(c);  // reserves the name, writes the record (phase creating)
    ContainerUndo undo(rt_, c);
    const std::string& id = c->id();

    std::string rootfs = path_join(c->rec.bundle, "rootfs");
    mkdir_p(rootfs, 0755);
    std::string parent = img.chain_ids.empty() ? "" : img.chain_ids.back();
    auto mounts = rt_.images().snapshots().prepare(id, parent);
    mount_rootfs(mounts, rootfs);
    for (const auto& volume : image_config.volumes)
      with_context(fmt::format("image volume {}", volume), [&] { make_dirs_in_root(rootfs, volume); });

    ContainerSpecInput in;
    in.id = id;
    in.config = &config;
    SandboxContext ctx = rt_.context_of(pod);
    in.sandbox = &ctx;
    in.image = image_config;
    in.rootfs = rootfs;
    in.resolve_user = rootfs_user_resolver(rootfs);
    in.target_pidns_path = target_pidns(rt_, config);
    in.image_name = c->rec.image_name;
    json spec = build_container_spec(in, rt_.spec_options());
    write_file(path_join(c->rec.bundle, "config.json"), spec.dump(), true, 0600);

    {
      std::lock_guard lk(c->mu);
      c->rec.phase = ContainerPhase::created;
    }
    rt_.persist(*c);
    undo.dismiss();
    resp->set_container_id(id);
    dlog::info("container created", {{"id", id}, {"name", c->rec.name}, {"image", c->rec.image_name}});
    rt_.emit(runtime::v1::CONTAINER_CREATED_EVENT, id, pod.id);
    return grpc::Status::OK;
  });
}

} // namespace berth::cri
