#include "cri/image/fetcher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

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
    : content_(content), slots_(std::clamp(max_concurrent, 1u, 64u)) {}

Fetcher::~Fetcher() {
  std::unique_lock lk(mu_);
  idle_.wait(lk, [&] { return running_ == 0; });
}

std::shared_ptr<BlobFetch> Fetcher::fetch(std::shared_ptr<RegistrySession> session, size_t endpoint,
                                          const std::string& digest, uint64_t size, Progress progress) {
  std::lock_guard lk(mu_);
  if (auto it = inflight_.find(digest); it != inflight_.end())
    if (auto f = it->second.lock()) return f;
  auto f = std::make_shared<BlobFetch>(digest, size);
  if (UniqueFd fd = content_.open_blob(digest)) {
    auto stored = content_.size(digest);
    if (stored && *stored == size) {
      f->attach(fd.release());
      f->complete();
      if (progress) progress(fmt::format("exists {}", digest));
      return f;
    }
  }
  inflight_[digest] = f;
  ++running_;
  std::thread([this, session = std::move(session), endpoint, f, progress = std::move(progress)]() mutable {
    download(std::move(session), endpoint, f, std::move(progress));
    std::lock_guard lk2(mu_);
    if (auto it = inflight_.find(f->digest()); it != inflight_.end() && it->second.lock() == f) inflight_.erase(it);
    f.reset();
    if (--running_ == 0) idle_.notify_all();
  }).detach();
  return f;
}

void Fetcher::download(std::shared_ptr<RegistrySession> session, size_t endpoint, std::shared_ptr<BlobFetch> f,
                       Progress progress) {
  const std::string& digest = f->digest();
  try {
    slots_.acquire();
    struct Release {
      std::counting_semaphore<64>& s;
      ~Release() { s.release(); }
    } release{slots_};
    auto ingest = content_.begin(digest, f->size());
    if (!ingest) {  // another process stored it while we waited for its lock
      UniqueFd fd = content_.open_blob(digest);
      if (!fd) fail_errno("open blob {}", digest);
      auto stored = content_.size(digest);
      if (!stored || *stored != f->size())
        fail("blob {}: the descriptor says {} bytes, the stored blob has {}", digest, f->size(), stored.value_or(0));
      f->attach(fd.release());
      f->complete();
      if (progress) progress(fmt::format("exists {}", digest));
      return;
    }
    int rfd = ::fcntl(ingest->fd(), F_DUPFD_CLOEXEC, 0);
    if (rfd < 0) fail_errno("dup ingest fd of {}", digest);
    f->attach(rfd);
    uint64_t next_report = 0;
    if (progress) progress(fmt::format("fetch {} 0 {}", digest, f->size()));
    session->get_blob(digest, f->size(), endpoint, [&](const char* d, size_t n) {
      ingest->write(d, n);
      f->advance(ingest->written());
      if (progress && ingest->written() >= next_report) {
        progress(fmt::format("fetch {} {} {}", digest, ingest->written(), f->size()));
        next_report = ingest->written() + (1 << 20);
      }
      return true;
    });
    ingest->commit();
    f->complete();
    if (progress) progress(fmt::format("fetched {}", digest));
  } catch (Error& e) {
    log::warn("fetch {}: {}", digest, e.what());
    f->abort(std::current_exception());
  } catch (...) {
    f->abort(std::current_exception());
  }
}

} // namespace berth::image
