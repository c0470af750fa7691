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

static int abort_when_set(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(user)->load() ? 1 : 0;
}

void curl_sink_request_options(const CurlApi* c, CURL* h, std::chrono::milliseconds timeout, std::atomic<bool>* aborted) {
  c->easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  c->easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
  c->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  c->easy_setopt(h, CURLOPT_PROXY, "");
  c->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  c->easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  c->easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_when_set);
  c->easy_setopt(h, CURLOPT_XFERINFODATA, aborted);
}

std::string trim_trailing_space(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

} // namespace berth::agent
