#include "cri/image/pull_libraries.hpp"

#include <malloc.h>

#include <thread>

#include "common/curl_lazy.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "cri/image/archive_lazy.hpp"
#include "cri/image/http.hpp"

namespace berth::image {

PullLibraries& PullLibraries::instance() {
  static PullLibraries* p = new PullLibraries();  // never destroyed: the unloader may outlive statics
  return *p;
}

PullLibraries::Lease PullLibraries::acquire() {
  {
    std::lock_guard lk(mu_);
    if (!loaded_) {
      std::string error;
      if (!CurlLibrary::instance().acquire(error)) fail("load libcurl: {}", error);
      if (!ArchiveLibrary::instance().acquire(error)) {
        CurlLibrary::instance().release();
        CurlLibrary::instance().unload_if_unused();
        fail("load libarchive: {}", error);
      }
      loaded_ = true;
      ++loads_;
      log::debug("pull libraries loaded (libcurl, libarchive)");
    }
    ++users_;
  }
  return Lease(this, [](void* p) { static_cast<PullLibraries*>(p)->release(); });
}

void PullLibraries::release() {
  std::lock_guard lk(mu_);
  if (users_ == 0 || --users_ > 0) return;
  last_release_ = Clock::now();
  if (idle_.count() < 0) return;
  if (idle_.count() == 0) {
    unload_locked();
    return;
  }
  if (!unloader_running_) {
    unloader_running_ = true;
    std::thread([this] { unloader(); }).detach();
  }
  cv_.notify_all();
}

void PullLibraries::unloader() {
  std::unique_lock lk(mu_);
  while (true) {
    if (users_ > 0 || !loaded_ || idle_.count() < 0) break;
    auto when = std::max(last_release_ + idle_, hold_until_);
    if (Clock::now() >= when) {
      unload_locked();
      break;
    }
    cv_.wait_until(lk, when);
  }
  unloader_running_ = false;
}

bool PullLibraries::unload_locked() {
  if (!loaded_ || users_ > 0) return false;
  if (Clock::now() < hold_until_) return false;
  if (!http_shutdown()) return false;
  CurlLibrary::instance().release();
  ArchiveLibrary::instance().release();
  bool curl = CurlLibrary::instance().unload_if_unused();
  bool archive = ArchiveLibrary::instance().unload_if_unused();
  loaded_ = false;
  ::malloc_trim(0);  // what the libraries' caches and pools held goes back to the kernel
  log::debug("pull libraries unloaded (libcurl {}, libarchive {})", curl ? "closed" : "kept",
             archive ? "closed" : "kept");
  return true;
}

void PullLibraries::set_idle_unload(std::chrono::milliseconds idle) {
  std::lock_guard lk(mu_);
  idle_ = idle;
  cv_.notify_all();
}

void PullLibraries::hold(Clock::duration d) {
  std::lock_guard lk(mu_);
  hold_until_ = std::max(hold_until_, Clock::now() + d);
}

bool PullLibraries::loaded() const {
  std::lock_guard lk(mu_);
  return loaded_;
}

unsigned PullLibraries::loads() const {
  std::lock_guard lk(mu_);
  return loads_;
}

bool PullLibraries::unload_now() {
  std::lock_guard lk(mu_);
  hold_until_ = {};
  return unload_locked();
}

} // namespace berth::image
