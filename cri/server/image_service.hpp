// runtime.v1.ImageService on the image library's ImageStore (cri/image): the CRI
// semantics (reference normalisation, idempotent removal, empty status for a missing
// image, containerd's verbose info) live here; pulling and storing live there.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api.grpc.pb.h"
#include "cri/image/image_store.hpp"

namespace berth::cri {

class ImageServiceImpl final : public runtime::v1::ImageService::Service {
public:
  // pinned: normalised references whose images are pinned (the kubelet's image GC
  // leaves them alone), e.g. the pause image.
  ImageServiceImpl(image::ImageStore& store, std::vector<std::string> pinned)
      : store_(store), pinned_(std::move(pinned)) {}

  // Makes the stored images' pinned flags match the configured references: pins the
  // ones present, unpins images pinned by an earlier configuration. Called at start-up.
  void reconcile_pinned();

  grpc::Status ListImages(grpc::ServerContext*, const runtime::v1::ListImagesRequest*,
                          runtime::v1::ListImagesResponse*) override;
  grpc::Status ImageStatus(grpc::ServerContext*, const runtime::v1::ImageStatusRequest*,
                           runtime::v1::ImageStatusResponse*) override;
  grpc::Status PullImage(grpc::ServerContext*, const runtime::v1::PullImageRequest*,
                         runtime::v1::PullImageResponse*) override;
  grpc::Status RemoveImage(grpc::ServerContext*, const runtime::v1::RemoveImageRequest*,
                           runtime::v1::RemoveImageResponse*) override;
  grpc::Status ImageFsInfo(grpc::ServerContext*, const runtime::v1::ImageFsInfoRequest*,
                           runtime::v1::ImageFsInfoResponse*) override;

private:
  // An image by full ID ("sha256:<64 hex>" or the bare hex), by reference (normalised
  // the way the kubelet does: busybox -> docker.io/library/busybox:latest), by repo
  // digest, or by unique ID prefix. Throws berth::Error (EINVAL) for a malformed reference.
  std::optional<image::ImageRecord> resolve(std::string_view ref) const;

  bool is_pinned_reference(const image::ImageRecord& rec) const;

  image::ImageStore& store_;
  std::vector<std::string> pinned_;
};

// The CRI Image message for a stored image, as containerd's CRI plugin fills it.
void to_cri_image(const image::ImageRecord& rec, runtime::v1::Image* out);
// containerd's verbose ImageStatus info: {"chainID": <top layer>, "imageSpec": <OCI config>}.
std::string verbose_image_info(const image::ImageRecord& rec);

} // namespace berth::cri
