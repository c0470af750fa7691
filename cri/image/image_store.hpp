// berth::image — the image half of berthd: registry pulls, content store, metadata,
// overlay snapshots. The daemon (cri/server) uses only this header and the value
// headers it includes. Contract: /work/notes/image-api.md.
//
// Changes after the first commit stay source-compatible; any that are not are
// announced here. Additions since: ImageStore::set_pinned,
// StoreOptions::sync_layers; pull's cancellation check, the download limits, deadlines
// and library unloading of StoreOptions, ImageRecord::user. list() leaves config_json
// empty (find() fills it): a listing never reads the configs.
//
// Thread safety: every ImageStore method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cri/image/snapshotter.hpp"

namespace berth::image {

// Settings for one registry host name ("docker.io", "registry.k8s.io", "127.0.0.1:5000").
struct RegistryHost {
  std::string host;
  // Endpoints tried in order before the host itself: "http://127.0.0.1:5000",
  // "https://mirror.example". A failing mirror (connection, 5xx, 404) falls through to
  // the next one; the host itself is the last resort.
  std::vector<std::string> mirrors;
  bool plain_http = false;     // talk http:// to the host itself (not to its mirrors)
  bool skip_verify = false;    // no TLS verification for the host and its mirrors
  std::string ca_file;         // extra CA bundle (PEM) for the host and its mirrors
  std::string username, password;  // static credentials, used when the pull brings none
};

struct StoreOptions {
  std::string root = "/var/lib/berthd";  // content/, snapshots/, meta.db, ingest/
  std::vector<RegistryHost> registries;
  // containerd's certs.d roots (hosts.toml per host directory, registry_hosts.hpp), used
  // for a host without a RegistryHost; read at each pull.
  std::vector<std::string> registry_config_dirs;
  // docker config.json / containers auth.json files, for credentials when neither the
  // pull nor a RegistryHost brings any (registry_auth.hpp); read at each pull.
  std::vector<std::string> auth_files;
  std::chrono::milliseconds credential_helper_timeout{std::chrono::seconds(10)};
  // Downloads one pull runs at the same time (each pull has its own slots, so a slow
  // registry holds up only its own pulls), and downloads of all pulls together.
  unsigned max_concurrent_downloads = 3;
  unsigned max_total_downloads = 16;
  // A blob download (from its start, retries and resumes included) and a whole pull
  // fail with ETIMEDOUT after these; zero: no deadline. Transfers that move less than
  // 1 KiB/s for 60 s are retried regardless; a manifest or token request has 120 s.
  std::chrono::milliseconds blob_timeout{std::chrono::minutes(20)};
  std::chrono::milliseconds pull_timeout{std::chrono::minutes(60)};
  // libcurl and libarchive are loaded by the first pull and closed this long after the
  // last one ends (process-wide; negative: kept loaded once loaded).
  std::chrono::milliseconds unload_libraries_after{std::chrono::seconds(30)};
  std::string platform_os = "linux";
  std::string platform_arch;             // empty: the host's (GOARCH spelling: amd64, arm64, ...)
  std::string platform_variant;          // e.g. "v8" for arm64; empty matches any
  unsigned retries = 3;                  // per request, with exponential backoff
  // One syncfs() per pull, after its layers are unpacked and before its record: a power
  // loss cannot leave a recorded image with missing layer or blob data (blobs are then
  // not fsynced one by one). Off: blobs are fsynced, layers are not synced. A process
  // crash (SIGKILL) is safe either way. Costs ~0.08 s per 100 MB here; containerd 1.6
  // does not sync layers.
  bool sync_layers = true;
};

// CRI's AuthConfig (runtime.v1.AuthConfig). `auth` is base64("user:password").
struct AuthConfig {
  std::string username, password, auth, server_address, identity_token, registry_token;
};

struct ImageRecord {
  std::string id;                         // "sha256:<config digest hex>"
  std::vector<std::string> repo_tags;     // "docker.io/library/busybox:latest"
  std::vector<std::string> repo_digests;  // "docker.io/library/busybox@sha256:..."
  uint64_t size = 0;                      // compressed size of manifest + config + layers (as containerd's CRI)
  std::string config_json;                // raw OCI image config
  std::string manifest_digest;            // digest of the platform manifest
  std::vector<std::string> chain_ids;     // snapshot keys, bottom layer first
  bool pinned = false;
  // config.User ("" when unset): "name", "uid", "uid:gid", "name:group". Taken from the
  // config at pull time and stored beside it, so listing images never parses configs.
  std::string user;
  std::string username() const { return user; }
};

struct FsUsage {
  std::string mountpoint;  // the snapshots directory
  uint64_t used_bytes = 0;
  uint64_t inodes_used = 0;
  int64_t timestamp_ns = 0;
};

// Progress events, one line each, space-separated, first word the phase:
//   "resolve <ref>"                        "manifest <digest>"
//   "fetch <digest> <done> <total>"        "fetched <digest>"   (at most one "fetch" per MiB)
//   "unpack <digest> <chain id>"           "unpacked <digest> <chain id>"
//   "exists <digest>"                      (blob already stored)
//   "exists <digest> <chain id>"           (layer already unpacked: no download)
//   "done <image id>"
// A blob downloaded for another pull at the same time reports its fetch events there only.
// Called from the pull's thread and its download threads (concurrently); must be cheap,
// thread-safe, and must not call back into the store.
using Progress = std::function<void(std::string_view event)>;

// Polled while a pull runs (from its threads, at most every 50 ms): true stops the pull
// with ECANCELED (CRI: the client went away). Must be cheap and thread-safe.
using CancelCheck = std::function<bool()>;

// "busybox" -> "docker.io/library/busybox:latest"; "foo/bar@sha256:..." keeps the digest
// (and drops the tag when both are given, as the kubelet does). Throws berth::Error naming
// the reference when it is invalid.
std::string normalize_reference(std::string_view ref);

class ImageStore {
public:
  // Opens (creating) the store under options.root. Recovers from a crash: leftover
  // temp/ingest files and unfinished snapshots are removed, the database is consistent.
  static std::unique_ptr<ImageStore> open(StoreOptions options);
  virtual ~ImageStore() = default;

  // Pulls and unpacks an image; returns its record. Concurrent pulls of the same image
  // or of images sharing blobs from the same registry download each blob once. Errors:
  // ECANCELED when `cancelled` said so, ETIMEDOUT past a deadline, ENOENT when no
  // endpoint has it, EACCES when credentials were refused, EINVAL for a bad reference.
  virtual ImageRecord pull(std::string_view ref, const AuthConfig& auth, const Progress& progress = {},
                           const CancelCheck& cancelled = {}) = 0;
  // By normalised tag, by "name@sha256:..." repo digest, by full or unique-prefix image
  // ID ("sha256:abc..." or "abc..."). nullopt when absent.
  virtual std::optional<ImageRecord> find(std::string_view ref_or_id_or_digest) const = 0;
  // Every image, without its config_json (the rest as find() gives it).
  virtual std::vector<ImageRecord> list() const = 0;
  // Removes the image (all its tags and digests) and garbage-collects blobs and
  // snapshots no longer referenced. Throws berth::Error with ENOENT when absent.
  virtual void remove(std::string_view ref_or_id) = 0;
  // Pinned images (the sandbox image) are reported as pinned to the kubelet, whose image
  // GC then leaves them alone. Throws berth::Error with ENOENT when absent.
  virtual void set_pinned(std::string_view ref_or_id, bool pinned) = 0;
  // Space and inodes used by all snapshots (CRI ImageFsInfo).
  virtual FsUsage usage() const = 0;
  virtual Snapshotter& snapshots() = 0;
};

} // namespace berth::image
