// Image references as the kubelet and containerd's CRI normalise them
// (github.com/distribution/reference ParseDockerRef semantics).
#pragma once

#include <string>
#include <string_view>

namespace berth::image {

struct Reference {
  std::string domain;  // "docker.io", "registry.k8s.io", "127.0.0.1:5000"
  std::string path;    // "library/busybox"
  std::string tag;     // empty when the reference is by digest
  std::string digest;  // "sha256:<hex>" or empty

  std::string name() const { return domain + "/" + path; }       // docker.io/library/busybox
  std::string str() const;                                         // name[:tag][@digest]
  // The reference to ask the registry for: the digest when present, else the tag.
  const std::string& object() const { return digest.empty() ? tag : digest; }
};

// Parses and normalises: adds docker.io and library/ and :latest where the kubelet does,
// drops the tag when a digest is present. Throws berth::Error naming the reference.
Reference parse_reference(std::string_view ref);

// True for "sha256:<64 lowercase hex>".
bool is_sha256_digest(std::string_view s);

} // namespace berth::image
