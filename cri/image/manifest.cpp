#include "cri/image/manifest.hpp"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "cri/image/digest.hpp"
#include "cri/image/reference.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {
namespace {

using nlohmann::json;

json parse_json(std::string_view body, std::string_view what) {
  json j = parse_untrusted_json(body, what);
  if (!j.is_object()) fail("{} is not a JSON object", what);
  return j;
}

std::string str_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Descriptor parse_descriptor(const json& j, std::string_view what) {
  if (!j.is_object()) fail("{}: descriptor is not an object", what);
  Descriptor d;
  d.media_type = str_field(j, "mediaType");
  d.digest = str_field(j, "digest");
  if (!is_sha256_digest(d.digest)) fail("{}: unsupported or invalid digest {}", what, excerpt(d.digest));
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0)
    fail("{} {}: invalid size", what, d.digest);
  d.size = size->get<uint64_t>();
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    d.os = str_field(*p, "os");
    d.architecture = str_field(*p, "architecture");
    d.variant = str_field(*p, "variant");
  }
  return d;
}

std::string normalize_variant(std::string_view arch, std::string_view variant) {
  if (arch == "arm64" && (variant.empty() || variant == "v8")) return "v8";
  return std::string(variant);
}

} // namespace

bool is_index_type(std::string_view t) {
  return t == "application/vnd.oci.image.index.v1+json" ||
         t == "application/vnd.docker.distribution.manifest.list.v2+json";
}

bool is_manifest_type(std::string_view t) {
  return t == "application/vnd.oci.image.manifest.v1+json" ||
         t == "application/vnd.docker.distribution.manifest.v2+json";
}

// 0 unless schemaVersion is an integer: json::value() would throw type_error on a string.
static int64_t schema_version(const json& j) {
  auto v = j.is_object() ? j.find("schemaVersion") : j.end();
  return v != j.end() && v->is_number_integer() ? v->get<int64_t>() : 0;
}

std::string manifest_media_type(std::string_view content_type, std::string_view body) {
  if (is_index_type(content_type) || is_manifest_type(content_type)) return std::string(content_type);
  json j = parse_json(body, "manifest");
  std::string t = str_field(j, "mediaType");
  if (!t.empty()) return t;
  if (j.contains("manifests")) return "application/vnd.oci.image.index.v1+json";
  if (j.contains("layers") && j.contains("config")) return "application/vnd.oci.image.manifest.v1+json";
  if (schema_version(j) == 1) return "application/vnd.docker.distribution.manifest.v1+json";
  return std::string(content_type);
}

std::vector<Descriptor> parse_index(std::string_view body) {
  json j = parse_json(body, "image index");
  auto m = j.find("manifests");
  if (m == j.end() || !m->is_array()) fail("image index has no manifests array");
  std::vector<Descriptor> out;
  for (auto& e : *m) out.push_back(parse_descriptor(e, "image index entry"));
  return out;
}

Manifest parse_manifest(std::string_view body) {
  json j = parse_json(body, "image manifest");
  if (schema_version(j) != 2) fail("image manifest: schemaVersion must be 2 (schema 1 is not supported)");
  Manifest m;
  auto c = j.find("config");
  if (c == j.end()) fail("image manifest has no config");
  m.config = parse_descriptor(*c, "image config");
  auto l = j.find("layers");
  if (l == j.end() || !l->is_array()) fail("image manifest has no layers array");
  for (auto& e : *l) {
    Descriptor d = parse_descriptor(e, "layer");
    const std::string& t = d.media_type;
    bool supported = t == "application/vnd.oci.image.layer.v1.tar" || t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
                     t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
                     t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
                     t == "application/vnd.docker.image.rootfs.diff.tar";
    if (!supported) fail("layer {}: unsupported media type {}", d.digest, excerpt(t));
    if (m.layers.size() >= kMaxLayers) fail("image manifest lists more than {} layers", kMaxLayers);
    m.layers.push_back(std::move(d));
  }
  return m;
}

const Descriptor* select_platform(const std::vector<Descriptor>& entries, std::string_view os, std::string_view arch,
                                  std::string_view variant) {
  std::string want_variant = normalize_variant(arch, variant);
  for (auto& e : entries) {
    if (e.os != os || e.architecture != arch) continue;
    if (variant.empty() && arch != "arm64") return &e;  // any variant will do
    if (normalize_variant(e.architecture, e.variant) == want_variant) return &e;
  }
  return nullptr;
}

std::vector<std::string> config_diff_ids(std::string_view config_json) {
  json j = parse_json(config_json, "image config");
  auto r = j.find("rootfs");
  if (r == j.end() || !r->is_object()) fail("image config has no rootfs");
  auto d = r->find("diff_ids");
  if (d == r->end() || !d->is_array()) fail("image config has no rootfs.diff_ids");
  std::vector<std::string> out;
  for (auto& e : *d) {
    if (!e.is_string() || !is_sha256_digest(e.get<std::string>()))
      fail("image config: rootfs.diff_ids[{}] is not a sha256 digest: {}", out.size(), describe_json(e));
    if (out.size() >= kMaxLayers) fail("image config lists more than {} layers", kMaxLayers);
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::string config_user(std::string_view config_json) {
  json j = parse_json(config_json, "image config");
  auto c = j.find("config");
  if (c == j.end() || !c->is_object()) return {};
  auto u = c->find("User");
  if (u == c->end() || !u->is_string()) return {};
  const auto& user = u->get_ref<const std::string&>();
  if (user.size() > kMaxUserBytes) fail("image config: config.User is {} bytes long (at most {})", user.size(), kMaxUserBytes);
  return user;
}

std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (auto& d : diff_ids) out.push_back(out.empty() ? d : sha256_digest(out.back() + " " + d));
  return out;
}

std::string host_architecture() {
  utsname u{};
  ::uname(&u);
  std::string_view m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64" || m == "arm64") return "arm64";
  if (m.starts_with("armv")) return "arm";
  if (m == "i386" || m == "i686") return "386";
  return std::string(m);  // ppc64le, s390x, riscv64 are spelled the same
}

} // namespace berth::image
