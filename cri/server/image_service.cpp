#include "cri/server/image_service.hpp"

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/daemon_log.hpp"
#include "cri/image/untrusted.hpp"
#include "cri/server/grpc_status.hpp"
#include "cri/server/metrics.hpp"

namespace berth::cri {
namespace {

using runtime::v1::Image;

// The last pull to end hands the heap's free memory back to the kernel: a pull's buffers
// (curl, decompression, tar reader, protobuf) are freed by then but glibc keeps the
// pages, which an idle daemon would carry until the next pull.
class PullInFlight {
public:
  PullInFlight() { active_.fetch_add(1); }
  ~PullInFlight() {
    if (active_.fetch_sub(1) == 1) malloc_trim(0);
  }
  PullInFlight(const PullInFlight&) = delete;
  PullInFlight& operator=(const PullInFlight&) = delete;

private:
  static inline std::atomic<int> active_{0};
};

// Every error message is bounded before it becomes the status: a C-core gRPC client (the
// Python one, crictl's is Go) refuses trailers over 8 KiB with RESOURCE_EXHAUSTED, which
// would hide the error. The library quotes only excerpts of registry input; this bounds
// the whole (2 KiB, which stays under 8 KiB even percent-encoded).
constexpr size_t kMaxStatusMessage = 2048;

grpc::Status failure(const std::exception& e, std::string_view call) {
  if (auto* be = dynamic_cast<const Error*>(&e))
    return status_from(Error(be->code(), image::bounded_message(be->message(), kMaxStatusMessage)), call);
  return status_from(std::runtime_error(image::bounded_message(e.what(), kMaxStatusMessage)), call);
}

// The reference as the client gave it, for messages: an excerpt.
std::string quoted_ref(std::string_view ref) { return image::excerpt(ref, 256); }

bool is_full_image_id(std::string_view s) {
  if (starts_with(s, "sha256:")) s.remove_prefix(7);
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

grpc::Status invalid(std::string_view msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(msg));
}

// Normalises a reference; a malformed one is the client's error (EINVAL).
std::string normalized(std::string_view ref) {
  try {
    return image::normalize_reference(ref);
  } catch (const Error& e) {
    throw Error(EINVAL, e.message());
  }
}

// Pull progress as log lines: phase changes at info, byte counts at debug at most
// once a second per blob, so a big layer does not flood the journal.
class PullLogger {
public:
  explicit PullLogger(std::string ref) : ref_(std::move(ref)) {}

  void operator()(std::string_view event) {
    auto words = split(event, ' ');
    if (words.empty()) return;
    const std::string& phase = words[0];
    count_bytes(words);
    if (phase == "fetch") {
      if (!dlog::enabled(dlog::Level::debug) || words.size() < 4) return;
      auto now = std::chrono::steady_clock::now();
      {
        std::lock_guard lock(mu_);
        auto& last = last_fetch_log_[words[1]];
        if (now - last < std::chrono::seconds(1)) return;
        last = now;
      }
      dlog::debug("fetching", {{"image", ref_}, {"blob", words[1]}, {"bytes", words[2]}, {"total", words[3]}});
      return;
    }
    std::string_view subject = words.size() > 1 ? std::string_view(words[1]) : std::string_view();
    std::string_view extra = words.size() > 2 ? std::string_view(words[2]) : std::string_view();
    if (phase == "unpacked" || phase == "unpack")
      dlog::info(phase, {{"image", ref_}, {"blob", subject}, {"chain_id", extra}});
    else if (phase == "done")
      return;  // PullImage logs the result itself
    else
      dlog::info(phase, {{"image", ref_}, {"ref", subject}});
  }

private:
  // Every downloaded blob announces "fetch <digest> 0 <size>" first and "fetched <digest>"
  // once complete: its size counts then (blobs already stored announce "exists").
  void count_bytes(const std::vector<std::string>& words) {
    if (words.size() < 2) return;
    std::lock_guard lock(mu_);
    if (words[0] == "fetch" && words.size() >= 4 && words[2] == "0") {
      if (auto n = parse_uint(words[3])) sizes_[words[1]] = *n;
    } else if (words[0] == "fetched") {
      auto it = sizes_.find(words[1]);
      if (it != sizes_.end()) {
        daemon_metrics().pull_bytes.inc(it->second);
        sizes_.erase(it);
      }
    }
  }

  std::string ref_;
  std::unordered_map<std::string, uint64_t> sizes_;
  std::mutex mu_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> last_fetch_log_;
};

} // namespace

void to_cri_image(const image::ImageRecord& rec, Image* out) {
  out->set_id(rec.id);
  for (auto& t : rec.repo_tags) out->add_repo_tags(t);
  for (auto& d : rec.repo_digests) out->add_repo_digests(d);
  out->set_size(rec.size);
  // config.User is "name", "uid", "uid:gid" or "name:group": a numeric user goes to
  // uid, anything else to username (the kubelet checks runAsNonRoot with these).
  std::string user = rec.username();
  if (auto colon = user.find(':'); colon != std::string::npos) user.resize(colon);
  if (!user.empty()) {
    if (auto uid = parse_int(user)) out->mutable_uid()->set_value(*uid);
    else out->set_username(user);
  }
  out->mutable_spec()->set_image(rec.id);
  out->set_pinned(rec.pinned);
}

std::string verbose_image_info(const image::ImageRecord& rec) {
  // The stored config goes in as it is, without a parse-copy-dump round trip: copying and
  // dumping a JSON document recurse over its depth. Pulls refuse configs deeper than the
  // library's limit; a config stored by an older berthd that is deeper, or not a JSON
  // object, is shown as {} rather than taking the daemon down.
  std::string_view config = trim(rec.config_json);
  bool usable = config.starts_with('{') && image::json_depth(config, image::kMaxJsonDepth) <= image::kMaxJsonDepth &&
                nlohmann::json::accept(config);
  std::string chain = rec.chain_ids.empty() ? "" : rec.chain_ids.back();
  return fmt::format("{{\"chainID\":{},\"imageSpec\":{}}}", nlohmann::json(chain).dump(),
                     usable ? config : std::string_view("{}"));
}

std::optional<image::ImageRecord> ImageServiceImpl::resolve(std::string_view ref) const {
  if (is_full_image_id(ref)) return store_.find(ref);
  // The normalised reference first; then the string as given, which finds unique ID
  // prefixes ("3f57d9401f8d", "sha256:3f57") that are not valid references.
  std::optional<Error> bad_reference;
  try {
    if (auto r = store_.find(normalized(ref))) return r;
  } catch (const Error& e) {
    if (e.code() != EINVAL) throw;
    bad_reference = e;
  }
  if (auto r = store_.find(ref)) return r;
  if (bad_reference) throw *bad_reference;
  return std::nullopt;
}

bool ImageServiceImpl::is_pinned_reference(const image::ImageRecord& rec) const {
  for (auto& ref : pinned_) {
    for (auto& t : rec.repo_tags)
      if (t == ref) return true;
    for (auto& d : rec.repo_digests)
      if (d == ref) return true;
  }
  return false;
}

void ImageServiceImpl::reconcile_pinned() {
  for (auto& rec : store_.list()) {
    bool want = is_pinned_reference(rec);
    if (rec.pinned == want) continue;
    store_.set_pinned(rec.id, want);
    dlog::info(want ? "image pinned" : "image unpinned", {{"id", rec.id}});
  }
}

grpc::Status ImageServiceImpl::ListImages(grpc::ServerContext*, const runtime::v1::ListImagesRequest* req,
                                          runtime::v1::ListImagesResponse* resp) {
  try {
    const std::string& filter = req->filter().image().image();
    if (!filter.empty()) {
      if (auto rec = resolve(filter)) to_cri_image(*rec, resp->add_images());
      return grpc::Status::OK;
    }
    for (auto& rec : store_.list()) to_cri_image(rec, resp->add_images());
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return failure(e, "list images");
  }
}

grpc::Status ImageServiceImpl::ImageStatus(grpc::ServerContext*, const runtime::v1::ImageStatusRequest* req,
                                           runtime::v1::ImageStatusResponse* resp) {
  const std::string& ref = req->image().image();
  if (ref.empty()) return invalid("image status: image.image (the reference) is empty");
  try {
    auto rec = resolve(ref);
    if (!rec) return grpc::Status::OK;  // CRI: a missing image is an empty response, not an error
    to_cri_image(*rec, resp->mutable_image());
    if (req->verbose()) (*resp->mutable_info())["info"] = verbose_image_info(*rec);
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return failure(e, fmt::format("image status {}", quoted_ref(ref)));
  }
}

grpc::Status ImageServiceImpl::PullImage(grpc::ServerContext* ctx, const runtime::v1::PullImageRequest* req,
                                         runtime::v1::PullImageResponse* resp) {
  const std::string& ref = req->image().image();
  if (ref.empty()) return invalid("pull image: image.image (the reference) is empty");
  PullInFlight in_flight;
  try {
    std::string name = normalized(ref);
    const auto& a = req->auth();
    image::AuthConfig auth{a.username(), a.password(), a.auth(), a.server_address(), a.identity_token(),
                           a.registry_token()};
    // The sandbox config is accepted for the log only: berthd has one snapshotter and
    // one platform, so the pod changes nothing about where or how the image is stored.
    const auto& pod = req->sandbox_config().metadata();
    std::string pod_name = pod.name().empty() ? "" : pod.namespace_() + "/" + pod.name();
    dlog::info("pulling image", {{"image", name}, {"pod", pod_name}, {"auth", a.ByteSizeLong() ? "yes" : "no"}});
    auto start = std::chrono::steady_clock::now();
    PullLogger logger(name);
    // The pull stops (CANCELLED) when the client goes away: the kubelet cancels a pull
    // it gave up on, crictl's timeout does, and so does berthd's own shutdown.
    image::ImageRecord rec = store_.pull(name, auth, [&logger](std::string_view ev) { logger(ev); },
                                         [ctx] { return ctx && ctx->IsCancelled(); });
    if (!rec.pinned && is_pinned_reference(rec)) {
      store_.set_pinned(rec.id, true);
      dlog::info("image pinned", {{"image", name}, {"id", rec.id}});
    }
    auto elapsed = std::chrono::steady_clock::now() - start;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
    daemon_metrics().pulls.with({"success"}).inc();
    daemon_metrics().pull_seconds.observe(std::chrono::duration<double>(elapsed).count());
    dlog::info("image pulled", {{"image", name}, {"id", rec.id}, {"size", std::to_string(rec.size)},
                                {"duration_ms", std::to_string(ms.count())}});
    resp->set_image_ref(rec.id);
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    daemon_metrics().pulls.with({"failure"}).inc();
    return failure(e, fmt::format("pull image {}", quoted_ref(ref)));
  }
}

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext*, const runtime::v1::RemoveImageRequest* req,
                                           runtime::v1::RemoveImageResponse*) {
  const std::string& ref = req->image().image();
  if (ref.empty()) return invalid("remove image: image.image (the reference) is empty");
  try {
    auto rec = resolve(ref);
    if (!rec) return grpc::Status::OK;  // idempotent, as CRI requires
    try {
      store_.remove(rec->id);
    } catch (const Error& e) {
      if (e.code() != ENOENT) throw;  // removed by a concurrent call: done as well
    }
    dlog::info("image removed", {{"image", ref}, {"id", rec->id}});
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return failure(e, fmt::format("remove image {}", quoted_ref(ref)));
  }
}

grpc::Status ImageServiceImpl::ImageFsInfo(grpc::ServerContext*, const runtime::v1::ImageFsInfoRequest*,
                                           runtime::v1::ImageFsInfoResponse* resp) {
  try {
    image::FsUsage u = store_.usage();
    auto* fs = resp->add_image_filesystems();
    fs->set_timestamp(u.timestamp_ns);
    fs->mutable_fs_id()->set_mountpoint(u.mountpoint);
    fs->mutable_used_bytes()->set_value(u.used_bytes);
    fs->mutable_inodes_used()->set_value(u.inodes_used);
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return failure(e, "image filesystem info");
  }
}

} // namespace berth::cri
