// Blob downloads shared by every pull of the store: one download per digest at a time
// (in-process single flight, plus the content store's per-digest file lock across
// processes), run in FIFO order by a pool of at most max_concurrent worker threads (each
// keeps its curl handle, so connections are reused from blob to blob), and readers that
// follow a download's bytes as they land in the ingest file, so a layer unpacks while it
// streams.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "cri/image/content_store.hpp"
#include "cri/image/image_store.hpp"
#include "cri/image/registry_client.hpp"

namespace berth::image {

class BlobFetch {
public:
  BlobFetch(std::string digest, uint64_t size) : digest_(std::move(digest)), size_(size) {}
  // Up to len bytes at offset `off`, waiting for the download; 0 at the end of a complete,
  // verified blob. Throws the download's error.
  size_t read_at(char* buf, size_t len, uint64_t off);
  // Waits for the download to end; throws its error.
  void wait();
  const std::string& digest() const { return digest_; }
  uint64_t size() const { return size_; }

  // Download side.
  void attach(int fd);        // a readable fd on the ingest (or final) file
  void advance(uint64_t total_written);
  void complete();            // verified and committed
  void abort(std::exception_ptr error);

private:
  std::string digest_;
  uint64_t size_;
  std::mutex mu_;
  std::condition_variable cv_;
  UniqueFd fd_;
  uint64_t available_ = 0;
  bool done_ = false;
  std::exception_ptr error_;
};

class Fetcher {
public:
  Fetcher(ContentStore& content, unsigned max_concurrent);
  ~Fetcher();  // finishes queued downloads, joins the workers
  // The fetch of `digest`: already complete when the blob is stored, shared when another
  // pull downloads it, else queued for the workers now.
  std::shared_ptr<BlobFetch> fetch(std::shared_ptr<RegistrySession> session, size_t endpoint,
                                   const std::string& digest, uint64_t size, Progress progress);

private:
  struct Job {
    std::shared_ptr<RegistrySession> session;
    size_t endpoint;
    std::shared_ptr<BlobFetch> fetch;
    Progress progress;
  };
  void worker();
  void download(const Job& job);
  ContentStore& content_;
  unsigned max_workers_;
  std::mutex mu_;
  std::condition_variable work_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::map<std::string, std::weak_ptr<BlobFetch>> inflight_;
};

} // namespace berth::image
