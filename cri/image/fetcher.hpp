// Blob downloads for the pulls of a store.
//
// Concurrency: each pull runs at most `per_pull` downloads at a time (the documented
// max_concurrent_downloads) and the process at most `total`; queued downloads start in
// FIFO order among the pulls that have a free slot, so a pull whose registry is slow
// holds only its own slots. Workers are threads started on demand that end when nothing
// runnable is queued (curl handles and their connections live in the HTTP pool, not in
// the threads).
//
// Sharing: a download in flight is shared by the pulls that need the same digest from
// the same registry host (the same endpoints would serve it); a pull of the same digest
// from another host downloads it itself, so a hostile registry that serves a victim's
// layer digest slowly cannot stall the victim. A pull whose shared download fails (its
// owner was cancelled, or the owner's repository is not authorised) falls back to its own.
//
// Stopping: a download stops when every pull waiting for it is done (client gone, pull
// deadline) or at its own deadline (blob_timeout from its start). Readers follow a
// download's bytes as they land in the ingest file, so a layer unpacks while it streams.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "cri/image/cancel.hpp"
#include "cri/image/content_store.hpp"
#include "cri/image/image_store.hpp"
#include "cri/image/pull_libraries.hpp"
#include "cri/image/registry_client.hpp"

namespace berth::image {

class BlobFetch {
public:
  BlobFetch(std::string digest, uint64_t size, const PullContext* owner, Progress progress)
      : digest_(std::move(digest)), size_(size), owner_(owner) {
    subscribers_.push_back({owner, std::move(progress)});
  }
  // Up to len bytes at offset `off`, waiting for the download; 0 at the end of a complete,
  // verified blob. Throws the download's error, or the pull's when `ctx` is done.
  size_t read_at(char* buf, size_t len, uint64_t off, const PullContext& ctx);
  // Waits for the download to end; throws its error (or the pull's when ctx is done).
  void wait(const PullContext& ctx);
  const std::string& digest() const { return digest_; }
  uint64_t size() const { return size_; }
  const PullContext* owner() const { return owner_; }
  bool failed();

  // Pulls interested in this download. A pull unsubscribes before it returns: its
  // progress callback is not called after that.
  void subscribe(const PullContext* ctx);
  void unsubscribe(const PullContext* ctx);
  // Every interested pull is done (or gone): the download may stop.
  bool abandoned();
  // Progress for the pull that started the download, while it is subscribed.
  void emit(std::string_view event);

  // Download side.
  void attach(int fd);  // a readable fd on the ingest (or final) file
  void advance(uint64_t total_written);
  void complete();  // verified and committed
  void abort(std::exception_ptr error);

private:
  // Waits (mu_ held through lk) until ready() or the download failed. The pull's own end
  // (deadline, cancelled client) throws its reason, a failed download its error.
  void await_locked(std::unique_lock<std::mutex>& lk, const PullContext& ctx, const std::function<bool()>& ready);

  struct Subscriber {
    const PullContext* ctx;
    Progress progress;
  };
  std::string digest_;
  uint64_t size_;
  const PullContext* owner_;
  std::mutex mu_;
  std::condition_variable cv_;
  UniqueFd fd_;
  uint64_t available_ = 0;
  bool done_ = false;
  std::exception_ptr error_;
  std::vector<Subscriber> subscribers_;
};

// One pull's share of the download slots.
struct PullSlots {
  unsigned limit = 3;
  unsigned running = 0;
};

struct FetchRequest {
  std::shared_ptr<RegistrySession> session;
  size_t endpoint = 0;
  std::string registry;  // the host the reference names: the sharing key with the digest
  std::string digest;
  uint64_t size = 0;
  const PullContext* ctx = nullptr;
  std::shared_ptr<PullSlots> slots;
  PullLibraries::Lease lease;
  Progress progress;
  bool exclusive = false;  // never share (a fallback after a shared download failed)
};

class Fetcher {
public:
  Fetcher(ContentStore& content, unsigned total, std::chrono::milliseconds blob_timeout);
  ~Fetcher();  // stops queued downloads, waits for running ones to notice
  // The fetch of a blob: already complete when stored, shared when the same registry's
  // download of it is in flight, else queued now. The caller unsubscribes when done.
  std::shared_ptr<BlobFetch> fetch(FetchRequest req);

private:
  struct Job {
    FetchRequest req;
    std::shared_ptr<BlobFetch> fetch;
  };
  void worker(Job job);
  bool next_job_locked(Job& out);
  void start_workers_locked();
  void download(const Job& job);
  ContentStore& content_;
  unsigned total_;
  std::chrono::milliseconds blob_timeout_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::deque<Job> queue_;
  unsigned workers_ = 0;
  bool stopping_ = false;
  std::map<std::string, std::weak_ptr<BlobFetch>> inflight_;  // "<registry> <digest>"
};

} // namespace berth::image
