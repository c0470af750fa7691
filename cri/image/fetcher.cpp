#include "cri/image/fetcher.hpp"

#include <fcntl.h>
#include <unistd.h>


#include "common/error.hpp"
#include "common/log.hpp"

namespace berth::image {

size_t BlobFetch::read_at(char* buf, size_t len, uint64_t off) {
  int fd;
  {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return error_ || available_ > off || done_; });
    if (error_) std::rethrow_exception(error_);
    if (off >= available_) return 0;  // done_ and everything read
    len = static_cast<size_t>(std::min<uint64_t>(len, available_ - off));
    fd = fd_.get();
  }
  // The fd stays open as long as this object lives; only bytes below available_ are read.
  while (true) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) fail_errno("read blob {}", digest_);
  }
}

void BlobFetch::wait() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return error_ || done_; });
  if (error_) std::rethrow_exception(error_);
}

void BlobFetch::attach(int fd) {
  std::lock_guard lk(mu_);
  fd_.reset(fd);
}

void BlobFetch::advance(uint64_t total_written) {
  {
    std::lock_guard lk(mu_);
    available_ = total_written;
  }
  cv_.notify_all();
}

void BlobFetch::complete() {
  {
    std::lock_guard lk(mu_);
    available_ = size_;
    done_ = true;
  }
  cv_.notify_all();
}

void BlobFetch::abort(std::exception_ptr error) {
  {
    std::lock_guard lk(mu_);
    error_ = error;
  }
  cv_.notify_all();
}

Fetcher::Fetcher(ContentStore& content, unsigned max_concurrent)
    : content_(content), max_workers_(std::clamp(max_concurrent, 1u, 64u)) {}

Fetcher::~Fetcher() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  for (auto& t : workers_) t.join();
}

std::shared_ptr<BlobFetch> Fetcher::fetch(std::shared_ptr<RegistrySession> session, size_t endpoint,
                                          const std::string& digest, uint64_t size, Progress progress) {
  std::shared_ptr<BlobFetch> f;
  {
    std::lock_guard lk(mu_);
    if (auto it = inflight_.find(digest); it != inflight_.end())
      if (auto running = it->second.lock()) return running;
    f = std::make_shared<BlobFetch>(digest, size);
    UniqueFd fd = content_.open_blob(digest);
    auto stored = fd ? content_.size(digest) : std::nullopt;
    if (!stored || *stored != size) {
      inflight_[digest] = f;
      queue_.push_back({std::move(session), endpoint, f, std::move(progress)});
      // Workers start on demand and stay: their curl handles keep connections open.
      if (workers_.size() < max_workers_) workers_.emplace_back([this] { worker(); });
      work_.notify_one();
      return f;
    }
    f->attach(fd.release());
    f->complete();
  }
  if (progress) progress(fmt::format("exists {}", digest));
  return f;
}

void Fetcher::worker() {
  std::unique_lock lk(mu_);
  while (true) {
    work_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    download(job);
    lk.lock();
    auto it = inflight_.find(job.fetch->digest());
    if (it != inflight_.end() && it->second.lock() == job.fetch) inflight_.erase(it);
  }
}

void Fetcher::download(const Job& job) {
  const auto& f = job.fetch;
  const auto& progress = job.progress;
  const std::string& digest = f->digest();
  try {
    auto ingest = content_.begin(digest, f->size());
    if (!ingest) {  // another process stored it while we waited for its lock
      UniqueFd fd = content_.open_blob(digest);
      if (!fd) fail_errno("open blob {}", digest);
      auto stored = content_.size(digest);
      if (!stored || *stored != f->size())
        fail("blob {}: the descriptor says {} bytes, the stored blob has {}", digest, f->size(), stored.value_or(0));
      f->attach(fd.release());
      // Progress before completion: once complete, the pull may return and its callback go.
      if (progress) progress(fmt::format("exists {}", digest));
      f->complete();
      return;
    }
    int rfd = ::fcntl(ingest->fd(), F_DUPFD_CLOEXEC, 0);
    if (rfd < 0) fail_errno("dup ingest fd of {}", digest);
    f->attach(rfd);
    uint64_t next_report = 0;
    if (progress) progress(fmt::format("fetch {} 0 {}", digest, f->size()));
    job.session->get_blob(digest, f->size(), job.endpoint, [&](const char* d, size_t n) {
      ingest->write(d, n);
      f->advance(ingest->written());
      if (progress && ingest->written() >= next_report) {
        progress(fmt::format("fetch {} {} {}", digest, ingest->written(), f->size()));
        next_report = ingest->written() + (1 << 20);
      }
      return true;
    });
    ingest->commit();
    if (progress) progress(fmt::format("fetched {}", digest));
    f->complete();
  } catch (Error& e) {
    log::warn("fetch {}: {}", digest, e.what());
    f->abort(std::current_exception());
  } catch (...) {
    f->abort(std::current_exception());
  }
}

} // namespace berth::image
