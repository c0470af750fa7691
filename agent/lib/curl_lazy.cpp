#include "agent/lib/curl_lazy.hpp"

#include <mutex>

namespace berth::agent {

const CurlApi* curl_api(std::string& error) {
  static std::mutex mu;
  static const CurlApi* api = nullptr;
  std::lock_guard lk(mu);
  if (!api) api = CurlLibrary::instance().acquire(error);  // one user, never released
  return api;
}

} // namespace berth::agent
