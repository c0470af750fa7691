// The libraries only pulls need — libcurl (registry requests) and libarchive (layer
// unpacking) — loaded with dlopen by the first pull and closed a while after the last
// one ends, so an idle berthd does not carry their dependency chains (TLS, Kerberos,
// LDAP, libxml2, ICU, ...). Pulls and downloads hold a Lease; when the last lease goes,
// an unloader thread waits `idle` (30 s by default), then drops the HTTP connection pool
// and closes both libraries; a pull meanwhile keeps them. Some libraries of the chains
// are marked NODELETE and stay mapped (docs/images.md lists them).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace berth::image {

class PullLibraries {
public:
  using Clock = std::chrono::steady_clock;
  static PullLibraries& instance();

  // Loads the libraries if needed; throws berth::Error when one cannot be loaded. The
  // libraries stay loaded while any copy of the lease lives.
  using Lease = std::shared_ptr<void>;
  Lease acquire();

  // How long the libraries stay loaded after the last lease ends (zero: unloaded at once;
  // negative: never unloaded). The last value set wins (one setting per process).
  void set_idle_unload(std::chrono::milliseconds idle);
  // Not unloaded for this long from now (libcurl may still run a detached resolver thread).
  void hold(Clock::duration d);
  bool loaded() const;
  unsigned loads() const;  // times the libraries were loaded (tests)
  // Unloads now when no lease is held; true when unloaded (tests, shutdown).
  bool unload_now();

private:
  PullLibraries() = default;
  void release();
  void unloader();
  bool unload_locked();  // mu_ held

  mutable std::mutex mu_;
  std::condition_variable cv_;
  unsigned users_ = 0;
  bool loaded_ = false;
  unsigned loads_ = 0;
  bool unloader_running_ = false;
  std::chrono::milliseconds idle_{30'000};
  Clock::time_point last_release_{};
  Clock::time_point hold_until_{};
};

} // namespace berth::image
