// ImageStore: pull = resolve (manifest, index -> platform manifest, config), then the
// layers download in parallel through the Fetcher while the pulling thread unpacks them
// bottom-up, each streaming from its growing ingest file; a layer's snapshot is committed
// only after its blob digest and its diff ID are verified. The image record is written
// last, in one transaction.
#include "cri/image/image_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <shared_mutex>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "cri/image/content_store.hpp"
#include "cri/image/fetcher.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/image/manifest.hpp"
#include "cri/image/metadata.hpp"
#include "cri/image/overlay_snapshotter.hpp"
#include "cri/image/pull_libraries.hpp"
#include "cri/image/reference.hpp"
#include "cri/image/unpack.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {

namespace {

void syncfs_path(const std::string& path) {
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || ::syncfs(dir.get()) < 0) fail_errno("sync {}", path);
}

bool same_filesystem(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) < 0) fail_errno("stat {}", a);
  if (::stat(b.c_str(), &sb) < 0) fail_errno("stat {}", b);
  return sa.st_dev == sb.st_dev;
}

bool all_hex(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos; }

class Store final : public ImageStore {
public:
  explicit Store(StoreOptions opts) : opts_(std::move(opts)) {
    if (opts_.platform_arch.empty()) opts_.platform_arch = host_architecture();
    mkdir_p(opts_.root, 0700);
    std::string lock_path = opts_.root + "/lock";
    lock_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock_) fail_errno("open {}", lock_path);
    if (::flock(lock_.get(), LOCK_EX | LOCK_NB) < 0)
      fail_errno("image store {} is in use by another process", opts_.root);
    md_ = std::make_unique<Metadata>(opts_.root + "/meta.db");
    // With sync_layers, the pull's syncfs makes its blobs durable before the record that
    // refers to them, so blobs are not fsynced one by one. A blob no record refers to may
    // then be torn by a power loss (its name durable, its data not): such blobs, left by
    // pulls that never finished, are re-hashed at open and dropped unless whole (a
    // retry reuses the whole ones).
    content_ = std::make_unique<ContentStore>(opts_.root, !opts_.sync_layers);
    snaps_ = std::make_unique<OverlaySnapshotter>(opts_.root + "/snapshots", *md_);
    snaps_->recover();
    if (opts_.sync_layers) {
      auto recorded = md_->referenced_blobs();
      for (auto& d : content_->list())
        if (!recorded.count(d) && !content_->verify(d)) {
          log::warn("content store: blob {} does not match its digest (cut by a power loss?): removed", d);
          content_->remove(d);
        }
    }
    opts_.max_concurrent_downloads = std::clamp(opts_.max_concurrent_downloads, 1u, 64u);
    opts_.max_total_downloads = std::clamp(opts_.max_total_downloads, opts_.max_concurrent_downloads, 1024u);
    fetcher_ = std::make_unique<Fetcher>(*content_, opts_.max_total_downloads, opts_.blob_timeout);
    PullLibraries::instance().set_idle_unload(opts_.unload_libraries_after);
  }

  ImageRecord pull(std::string_view ref_str, const AuthConfig& auth, const Progress& progress,
                   const CancelCheck& cancelled) override {
    return with_context(fmt::format("pull {}", excerpt(ref_str, 256)), [&] {
      PullContext ctx(cancelled, opts_.pull_timeout);
      PullLibraries::Lease lease = PullLibraries::instance().acquire();
      return do_pull(ref_str, auth, progress, ctx, lease);
    });
  }

  std::optional<ImageRecord> find(std::string_view s) const override {
    if (s.empty()) return std::nullopt;
    std::string_view hex = s.starts_with("sha256:") ? s.substr(7) : s;
    if (hex.size() == 64 && all_hex(hex)) return md_->image("sha256:" + std::string(hex));
    try {
      Reference r = parse_reference(s);
      if (auto id = md_->image_by_name(r.str())) return md_->image(*id);
    } catch (const Error&) {
    }
    // A unique prefix of an image ID, as crictl and the kubelet accept.
    if (all_hex(hex) && hex.size() >= 3) {
      auto ids = md_->image_ids_with_prefix(std::string(hex));
      if (ids.size() == 1) return md_->image(ids[0]);
    }
    return std::nullopt;
  }

  std::vector<ImageRecord> list() const override { return md_->images(); }

  void remove(std::string_view ref) override {
    auto rec = find(ref);
    if (!rec) fail_code(ENOENT, "remove image {}: not found", ref);
    std::unique_lock gc(gc_mu_);
    md_->delete_image(rec->id);
    collect_garbage();
  }

  void set_pinned(std::string_view ref, bool pinned) override {
    auto rec = find(ref);
    if (!rec || !md_->set_pinned(rec->id, pinned)) fail_code(ENOENT, "pin image {}: not found", ref);
  }

  // Committed snapshots never change, so their usage is walked once and cached.
  FsUsage usage() const override {
    FsUsage out{snaps_->root(), 0, 1, now_ns()};
    std::lock_guard lk(usage_mu_);
    std::map<std::string, TreeUsage> fresh;
    for (auto& s : snaps_->list()) {
      TreeUsage u;
      std::string key = s.key + "\n" + std::to_string(s.created_ns);
      if (s.kind == SnapshotKind::committed && usage_cache_.count(key)) {
        u = usage_cache_.at(key);
      } else {
        try {
          auto su = snaps_->usage(s.key);
          u = {su.bytes, su.inodes};
        } catch (const Error&) {
          continue;  // removed meanwhile
        }
      }
      if (s.kind == SnapshotKind::committed) fresh[key] = u;
      out.used_bytes += u.bytes;
      out.inodes_used += u.inodes;
    }
    usage_cache_ = std::move(fresh);
    return out;
  }

  Snapshotter& snapshots() override { return *snaps_; }

private:
  // Called with gc_mu_ held exclusively: no pull is between its first blob and its record.
  void collect_garbage() {
    auto keep_chains = md_->image_chain_ids();
    size_t snaps = snaps_->collect_garbage(keep_chains);
    auto keep_blobs = md_->referenced_blobs();
    size_t blobs = 0;
    for (auto& d : content_->list())
      if (!keep_blobs.count(d)) {
        content_->remove(d);
        ++blobs;
      }
    log::debug("image gc: removed {} snapshots and {} blobs", snaps, blobs);
  }

  // A mutex per key (a chain ID, or "config <registry> <digest>").
  std::shared_ptr<std::mutex> chain_lock(const std::string& chain) {
    std::lock_guard lk(chain_mu_);
    auto& m = chain_locks_[chain];
    if (!m) m = std::make_shared<std::mutex>();
    return m;
  }

  // Fetches a config blob on the calling thread (its connection to the registry is warm
  // from the manifest). Racing pulls of one config from one registry fetch it once: the
  // first holds the key's lock, the others wait (watching their own cancellation and
  // deadline) and then find it stored. Keyed by registry too, like layer downloads, so a
  // hostile registry serving a victim's config digest slowly holds up only its own pulls.
  std::string fetch_config(RegistrySession& s, size_t ep, const std::string& registry, const Descriptor& d,
                           const Progress& progress, const StopCheck& stop, const PullContext& ctx) {
    if (d.size > kMaxConfigBytes) fail("config {} is {} bytes: larger than {}", d.digest, d.size, kMaxConfigBytes);
    auto lock = chain_lock("config " + registry + " " + d.digest);
    std::unique_lock lk(*lock, std::defer_lock);
    while (!lk.try_lock())
      if (!ctx.sleep_for(std::chrono::milliseconds(20))) ctx.check();
    if (auto stored = content_->read(d.digest); stored && stored->size() == d.size) return *stored;
    if (auto ingest = content_->begin(d.digest, d.size)) {
      if (progress) progress(fmt::format("fetch {} 0 {}", d.digest, d.size));
      s.get_blob(d.digest, d.size, ep, [&](const char* p, size_t n) {
        ingest->write(p, n);
        return true;
      }, stop);
      ingest->commit();
      if (progress) progress(fmt::format("fetched {}", d.digest));
    }
    auto data = content_->read(d.digest);
    if (!data || data->size() != d.size) fail("config {}: stored blob does not match its descriptor", d.digest);
    return *data;
  }

  ImageRecord do_pull(std::string_view ref_str, const AuthConfig& auth, const Progress& progress,
                      const PullContext& ctx, const PullLibraries::Lease& lease) {
    auto emit = [&](std::string_view ev) {
      if (progress) progress(ev);
    };
    Reference ref = parse_reference(ref_str);
    emit("resolve " + ref.str());
    StopCheck stop;
    stop.stop = [&ctx] { return ctx.cancelled(); };
    stop.deadline = ctx.deadline();
    stop.why_deadline = fmt::format("pull deadline of {} s", ctx.timeout().count() / 1000.0);
    AuthSources sources;
    sources.files = opts_.auth_files;
    sources.helper_timeout = opts_.credential_helper_timeout;
    auto session = std::make_shared<RegistrySession>(
        resolve_endpoints(opts_.registries, ref.domain, opts_.registry_config_dirs), ref.path,
        resolve_credentials(opts_.registries, ref.domain, auth, sources, ref.path), opts_.retries);
    FetchedManifest top = session->get_manifest(ref.object(), stop);
    std::string top_digest = sha256_digest(top.body);
    if (!ref.digest.empty() && top_digest != ref.digest)
      fail("registry sent a manifest with digest {} for {}", top_digest, ref.digest);
    std::string type = manifest_media_type(top.media_type, top.body);
    std::vector<std::pair<std::string, std::string>> manifests{{top_digest, top.body}};
    std::string manifest_body = top.body, manifest_digest = top_digest;
    if (is_index_type(type)) {
      auto entries = parse_index(top.body);
      const Descriptor* d = select_platform(entries, opts_.platform_os, opts_.platform_arch, opts_.platform_variant);
      if (!d)
        fail("no manifest for platform {}/{}{} in index {}", opts_.platform_os, opts_.platform_arch,
             opts_.platform_variant.empty() ? "" : "/" + opts_.platform_variant, top_digest);
      FetchedManifest child = session->get_manifest(d->digest, stop);
      if (sha256_digest(child.body) != d->digest) fail("registry sent a wrong manifest for {}", d->digest);
      if (child.body.size() != d->size) fail("manifest {}: size differs from the index's", d->digest);
      manifest_body = child.body;
      manifest_digest = d->digest;
      manifests.emplace_back(manifest_digest, manifest_body);
      type = manifest_media_type(child.media_type, child.body);
      top.endpoint = child.endpoint;
    }
    if (!is_manifest_type(type)) fail("unsupported manifest media type {}", excerpt(type));
    emit("manifest " + manifest_digest);
    Manifest m = parse_manifest(manifest_body);

    std::shared_lock gc(gc_mu_);  // no garbage collection while this pull holds unreferenced content
    // Every layer's download starts before the config is fetched (on this thread, over the
    // manifest's warm connection), so the config's round trip overlaps the layers'. The
    // chain IDs that tell which snapshots exist come from the config: until it is here, a
    // layer is fetched unless its blob is stored (the Fetcher then attaches the stored
    // blob); a layer whose snapshot turns out to exist is not unpacked again. Only a layer
    // unpacked before from another blob with the same diff ID (another compression) is
    // fetched needlessly. The Fetcher bounds how many downloads run.
    auto slots = std::make_shared<PullSlots>();
    slots->limit = opts_.max_concurrent_downloads;
    auto request = [&](size_t i, bool exclusive) {
      FetchRequest r;
      r.session = session;
      r.endpoint = top.endpoint;
      r.registry = ref.domain;
      r.digest = m.layers[i].digest;
      r.size = m.layers[i].size;
      r.ctx = &ctx;
      r.slots = slots;
      r.lease = lease;
      r.progress = progress;
      r.exclusive = exclusive;
      return r;
    };
    std::vector<std::shared_ptr<BlobFetch>> fetches(m.layers.size());
    // The pull leaves its downloads when it returns: they stop calling its progress, and
    // stop altogether unless another pull still waits for them.
    struct Leave {
      std::vector<std::shared_ptr<BlobFetch>>& fs;
      const PullContext* ctx;
      ~Leave() {
        for (auto& f : fs)
          if (f) f->unsubscribe(ctx);
      }
    } leave{fetches, &ctx};
    for (size_t i = 0; i < m.layers.size(); ++i) fetches[i] = fetcher_->fetch(request(i, false));

    StopCheck config_stop = stop;  // the config is a blob: it has a blob's deadline too
    if (opts_.blob_timeout.count() > 0 &&
        std::chrono::steady_clock::now() + opts_.blob_timeout < config_stop.deadline) {
      config_stop.deadline = std::chrono::steady_clock::now() + opts_.blob_timeout;
      config_stop.why_deadline = fmt::format("blob deadline of {} s", opts_.blob_timeout.count() / 1000.0);
    }
    std::string config = fetch_config(*session, top.endpoint, ref.domain, m.config, progress, config_stop, ctx);
    auto diff_ids = config_diff_ids(config);
    if (diff_ids.size() != m.layers.size())
      fail("image config lists {} layers, manifest {}", diff_ids.size(), m.layers.size());
    std::string user = config_user(config);
    auto chains = chain_ids(diff_ids);

    for (size_t i = 0; i < m.layers.size(); ++i) {
      try {
        unpack_layer(m.layers[i], diff_ids[i], chains, i, fetches[i], progress, ctx);
      } catch (const Error&) {
        // A download shared with another pull failed there (that pull was cancelled, or
        // its repository is not authorised): this pull fetches the layer itself, once.
        if (fetches[i]->owner() == &ctx || !fetches[i]->failed() || ctx.done()) throw;
        log::info("layer {}: the download shared with another pull failed; fetching it again", m.layers[i].digest);
        fetches[i]->unsubscribe(&ctx);
        fetches[i] = fetcher_->fetch(request(i, true));
        unpack_layer(m.layers[i], diff_ids[i], chains, i, fetches[i], progress, ctx);
      }
    }
    ctx.check();

    for (auto& [d, body] : manifests) content_->put(d, body);
    if (opts_.sync_layers) {
      // One syncfs for the image's layers and blobs (cheaper than an fsync per blob and a
      // syncfs per layer, which would also flush the other downloads each time), then the
      // chain is durable and the record may refer to the blobs.
      syncfs_path(snaps_->root());
      if (!same_filesystem(snaps_->root(), content_->root())) syncfs_path(content_->root());
      snaps_->mark_durable(chains);
    } else {
      content_->sync();  // the blobs' names are on disk before a record refers to them
    }
    ImageRecord rec;
    rec.id = m.config.digest;
    if (!ref.tag.empty()) rec.repo_tags.push_back(ref.name() + ":" + ref.tag);
    rec.repo_digests.push_back(ref.name() + "@" + top_digest);
    rec.config_json = config;
    rec.user = user;
    rec.manifest_digest = manifest_digest;
    rec.chain_ids = chains;
    rec.size = m.config.size;
    for (auto& [d, body] : manifests) rec.size += body.size();
    std::vector<std::string> blobs{m.config.digest};
    for (auto& [d, body] : manifests) blobs.push_back(d);
    for (auto& l : m.layers) {
      rec.size += l.size;
      blobs.push_back(l.digest);
    }
    md_->put_image(rec, blobs, now_ns());
    emit("done " + rec.id);
    log::debug("pulled {} as {} ({} layers, {} bytes)", ref.str(), rec.id, m.layers.size(), rec.size);
    auto stored = md_->image(rec.id);
    return stored ? *stored : rec;
  }

  void unpack_layer(const Descriptor& layer, const std::string& diff_id, const std::vector<std::string>& chains,
                    size_t i, const std::shared_ptr<BlobFetch>& fetch, const Progress& progress,
                    const PullContext& ctx) {
    // The chain's lock is held only to look and to commit, never while the layer streams:
    // a hostile registry can serve a victim's layer (same digest, same chain ID) at a byte
    // a second, and the victim's pull must not wait for that unpack. Pulls that race each
    // unpack into their own key; the first to commit wins, the others drop theirs.
    auto lock = chain_lock(chains[i]);
    auto exists = [&] {
      if (!snaps_->stat(chains[i])) return false;  // unpacked before, or by a concurrent pull
      if (progress) progress(fmt::format("exists {} {}", layer.digest, chains[i]));
      return true;
    };
    {
      std::lock_guard lk(*lock);
      if (exists()) return;
    }
    std::shared_ptr<BlobFetch> f = fetch;
    if (!f) fail("layer {}: snapshot {} disappeared during the pull", layer.digest, chains[i]);
    std::string parent = i ? chains[i - 1] : std::string();
    std::string key = snaps_->prepare_unpack(chains[i], parent);
    try {
      if (progress) progress(fmt::format("unpack {} {}", layer.digest, chains[i]));
      uint64_t offset = 0;
      Decompressor stream([&](char* buf, size_t len) {
        size_t n = f->read_at(buf, len, offset, ctx);
        offset += n;
        return n;
      });
      std::string fs = snaps_->fs_dir(key);
      std::vector<std::string> parents = parent.empty() ? std::vector<std::string>{} : snaps_->chain_dirs(parent);
      try {
        apply_layer(fs, stream, parents, opts_.sync_layers);
      } catch (...) {
        f->wait(ctx);  // a download error explains a broken stream better than the tar reader
        throw;
      }
      std::string got = stream.finish();
      f->wait(ctx);  // the blob's digest and size are verified before we trust what we unpacked
      if (got != diff_id) fail("layer {}: uncompressed digest {} differs from the config's diff ID {}", layer.digest, got, diff_id);
      std::lock_guard lk(*lock);
      if (exists()) {
        snaps_->remove(key);
        return;
      }
      // With sync_layers, durable only after the pull's one syncfs (see do_pull).
      snaps_->commit_unpacked(chains[i], key, !opts_.sync_layers);
      if (progress) progress(fmt::format("unpacked {} {}", layer.digest, chains[i]));
    } catch (Error& e) {
      try {
        snaps_->remove(key);
      } catch (const Error& e2) {
        log::warn("discard snapshot {}: {}", key, e2.what());
      }
      e.wrap(fmt::format("layer {}", layer.digest));
      throw;
    } catch (...) {
      try {
        snaps_->remove(key);
      } catch (...) {
      }
      throw;
    }
  }

  StoreOptions opts_;
  UniqueFd lock_;
  std::unique_ptr<Metadata> md_;
  std::unique_ptr<ContentStore> content_;
  std::unique_ptr<OverlaySnapshotter> snaps_;
  std::unique_ptr<Fetcher> fetcher_;
  std::shared_mutex gc_mu_;
  mutable std::mutex usage_mu_;
  mutable std::map<std::string, TreeUsage> usage_cache_;  // "<key>\n<created>" of committed snapshots
  std::mutex chain_mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> chain_locks_;
};

} // namespace

std::unique_ptr<ImageStore> ImageStore::open(StoreOptions options) {
  std::string root = options.root;
  return with_context(fmt::format("open image store {}", root),
                      [&]() -> std::unique_ptr<ImageStore> { return std::make_unique<Store>(std::move(options)); });
}

} // namespace berth::image
