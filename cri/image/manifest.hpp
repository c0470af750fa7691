// OCI / Docker schema2 manifests, indexes and image configs: parsing, validation and
// platform selection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::image {

// At most this many layers in an image (overlayfs cannot stack more than 500 anyway).
inline constexpr size_t kMaxLayers = 1000;
// Image configs larger than this are refused (the container side takes at most 8 MiB).
inline constexpr uint64_t kMaxConfigBytes = 8 << 20;
// config.User longer than this is refused (a user[:group] name; kept per image).
inline constexpr size_t kMaxUserBytes = 1024;

struct Descriptor {
  std::string media_type, digest;
  uint64_t size = 0;
  std::string os, architecture, variant;  // index entries only
};

bool is_index_type(std::string_view media_type);
bool is_manifest_type(std::string_view media_type);

// The media type from the Content-Type header or, failing that, the body's mediaType
// (and schemaVersion/manifests/layers when neither says).
std::string manifest_media_type(std::string_view content_type, std::string_view body);

std::vector<Descriptor> parse_index(std::string_view body);

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};
Manifest parse_manifest(std::string_view body);

// The first index entry for os/arch/variant (variant empty: any; arm64's "v8" and an
// absent variant are the same, as in containerd's platform matcher).
const Descriptor* select_platform(const std::vector<Descriptor>& entries, std::string_view os,
                                  std::string_view arch, std::string_view variant);

// rootfs.diff_ids of an image config. Configs, like manifests and indexes, are parsed
// with the depth limit of cri/image/untrusted.hpp; errors quote bounded excerpts.
std::vector<std::string> config_diff_ids(std::string_view config_json);
// config.User ("" when absent); throws when the config is not a bounded JSON object or
// the user is longer than kMaxUserBytes.
std::string config_user(std::string_view config_json);

// chain[0] = diff[0]; chain[i] = sha256(chain[i-1] + " " + diff[i]) (OCI image spec).
std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids);

// Host architecture in GOARCH spelling (amd64, arm64, arm, 386, ppc64le, s390x, riscv64).
std::string host_architecture();

} // namespace berth::image
