#include "cri/image/fetcher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"

namespace berth::image {

using Clock = std::chrono::steady_clock;

size_t BlobFetch::read_at(char* buf, size_t len, uint64_t off, const PullContext& ctx) {
  int fd;
  {
    std::unique_lock lk(mu_);
    await_locked(lk, ctx, [&] { return available_ > off || done_; });
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

void BlobFetch::await_locked(std::unique_lock<std::mutex>& lk, const PullContext& ctx,
                             const std::function<bool()>& ready) {
  while (!(error_ || ready())) {
    if (ctx.done()) {
      lk.unlock();
      ctx.check();
      lk.lock();
      continue;
    }
    cv_.wait_for(lk, std::chrono::milliseconds(100));
  }
  if (error_) {
    ctx.check();  // a download stopped because this pull ended: the pull's own reason
    std::rethrow_exception(error_);
  }
}

void BlobFetch::wait(const PullContext& ctx) {
  std::unique_lock lk(mu_);
  await_locked(lk, ctx, [&] { return done_; });
}

bool BlobFetch::failed() {
  std::lock_guard lk(mu_);
  return error_ != nullptr;
}

void BlobFetch::subscribe(const PullContext* ctx) {
  std::lock_guard lk(mu_);
  subscribers_.push_back({ctx, {}});
}

void BlobFetch::unsubscribe(const PullContext* ctx) {
  std::lock_guard lk(mu_);
  auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](auto& s) { return s.ctx == ctx; });
  if (it != subscribers_.end()) subscribers_.erase(it);
}

bool BlobFetch::abandoned() {
  std::lock_guard lk(mu_);
  for (auto& s : subscribers_)
    if (!s.ctx || !s.ctx->done()) return false;
  return true;
}

void BlobFetch::emit(std::string_view event) {
  std::lock_guard lk(mu_);
  for (auto& s : subscribers_)
    if (s.ctx == owner_ && s.progress) s.progress(event);
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

Fetcher::Fetcher(ContentStore& content, unsigned total, std::chrono::milliseconds blob_timeout)
    : content_(content), total_(std::clamp(total, 1u, 1024u)), blob_timeout_(blob_timeout) {}

Fetcher::~Fetcher() {
  std::unique_lock lk(mu_);
  stopping_ = true;
  for (auto& j : queue_) j.fetch->abort(std::make_exception_ptr(Error(ECANCELED, "image store closed")));
  queue_.clear();
  idle_.wait(lk, [&] { return workers_ == 0; });
}

std::shared_ptr<BlobFetch> Fetcher::fetch(FetchRequest req) {
  std::string key = req.registry + " " + req.digest;
  std::shared_ptr<BlobFetch> f;
  {
    std::lock_guard lk(mu_);
    if (!req.exclusive)
      if (auto it = inflight_.find(key); it != inflight_.end())
        if (auto running = it->second.lock(); running && !running->failed()) {
          running->subscribe(req.ctx);
          return running;
        }
    f = std::make_shared<BlobFetch>(req.digest, req.size, req.ctx, req.progress);
    UniqueFd fd = content_.open_blob(req.digest);
    auto stored = fd ? content_.size(req.digest) : std::nullopt;
    if (!stored || *stored != req.size) {
      if (stopping_) fail_code(ECANCELED, "image store closed");
      if (!req.exclusive) inflight_[key] = f;
      queue_.push_back({std::move(req), f});
      start_workers_locked();
      return f;
    }
    f->attach(fd.release());
    f->complete();
  }
  if (req.progress) req.progress(fmt::format("exists {}", req.digest));
  return f;
}

bool Fetcher::next_job_locked(Job& out) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->req.slots && it->req.slots->running >= it->req.slots->limit) continue;
    out = std::move(*it);
    queue_.erase(it);
    if (out.req.slots) ++out.req.slots->running;
    return true;
  }
  return false;
}

void Fetcher::start_workers_locked() {
  while (!stopping_ && workers_ < total_) {
    Job job;
    if (!next_job_locked(job)) return;
    ++workers_;
    auto holder = std::make_shared<Job>(std::move(job));
    try {
      std::thread([this, holder] { worker(std::move(*holder)); }).detach();
    } catch (const std::system_error& e) {
      --workers_;
      if (holder->req.slots) --holder->req.slots->running;
      holder->fetch->abort(std::make_exception_ptr(Error(EAGAIN, fmt::format("start a download thread: {}", e.what()))));
      return;
    }
  }
}

void Fetcher::worker(Job job) {
  while (true) {
    download(job);
    std::lock_guard lk(mu_);
    if (job.req.slots) --job.req.slots->running;
    auto key = job.req.registry + " " + job.req.digest;
    if (auto it = inflight_.find(key); it != inflight_.end() && it->second.lock() == job.fetch) inflight_.erase(it);
    Job next;
    bool more = !stopping_ && next_job_locked(next);
    job = Job{};  // drops the session and the lease before this thread may end
    if (!more) {
      start_workers_locked();  // a slot this job freed may let another pull's job run
      if (--workers_ == 0) idle_.notify_all();
      return;  // nothing of this object is touched after the unlock
    }
    job = std::move(next);
  }
}

void Fetcher::download(const Job& job) {
  const auto& f = job.fetch;
  const std::string& digest = f->digest();
  StopCheck stop;
  stop.stop = [f] { return f->abandoned(); };
  if (blob_timeout_.count() > 0) {
    stop.deadline = Clock::now() + blob_timeout_;
    stop.why_deadline = fmt::format("blob deadline of {} s", blob_timeout_.count() / 1000.0);
  }
  try {
    if (f->abandoned()) fail_code(ECANCELED, "blob {}: no pull waits for it any more", digest);
    auto ingest = content_.begin(digest, f->size());
    if (!ingest) {  // stored meanwhile
      UniqueFd fd = content_.open_blob(digest);
      if (!fd) fail_errno("open blob {}", digest);
      auto stored = content_.size(digest);
      if (!stored || *stored != f->size())
        fail("blob {}: the descriptor says {} bytes, the stored blob has {}", digest, f->size(), stored.value_or(0));
      f->attach(fd.release());
      f->emit(fmt::format("exists {}", digest));
      f->complete();
      return;
    }
    int rfd = ::fcntl(ingest->fd(), F_DUPFD_CLOEXEC, 0);
    if (rfd < 0) fail_errno("dup ingest fd of {}", digest);
    f->attach(rfd);
    uint64_t next_report = 0;
    f->emit(fmt::format("fetch {} 0 {}", digest, f->size()));
    job.req.session->get_blob(digest, f->size(), job.req.endpoint, [&](const char* d, size_t n) {
      ingest->write(d, n);
      f->advance(ingest->written());
      if (ingest->written() >= next_report) {
        f->emit(fmt::format("fetch {} {} {}", digest, ingest->written(), f->size()));
        next_report = ingest->written() + (1 << 20);
      }
      return true;
    }, stop);
    ingest->commit();
    f->emit(fmt::format("fetched {}", digest));
    f->complete();
  } catch (Error& e) {
    log::warn("fetch {}: {}", digest, e.what());
    f->abort(std::current_exception());
  } catch (...) {
    f->abort(std::current_exception());
  }
}

} // namespace berth::image
