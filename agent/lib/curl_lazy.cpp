#include "agent/lib/curl_lazy.hpp"

#include <atomic>
#include <mutex>

namespace berth::agent {

const CurlApi* curl_api(std::string& error) {
  static std::mutex mu;
  static const CurlApi* api = nullptr;
  std::lock_guard lk(mu);
  if (!api) api = CurlLibrary::instance().acquire(error);  // one user, never released
  return api;
}

int curl_abort_when_set(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(user)->load() ? 1 : 0;
}

std::string trim_trailing_space(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

} // namespace berth::agent
