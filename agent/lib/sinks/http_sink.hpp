// The http sink: each item as {"kind":...,"object":...} POSTed (or PUT) to the first of
// its URLs that takes it. 2xx: delivered. 408, 429, 5xx, timeouts and connection errors:
// the next URL is tried at once, and when none took it the runner retries with back-off.
// Another 4xx: the receiver refuses this item, which is dropped (logged) and not retried.
// The URL that last worked is tried first. Credentials are read at each request, so a
// rotated token is used without a restart.
#pragma once

#include <curl/curl.h>

#include <atomic>

#include "agent/lib/sinks/sink.hpp"
#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

class HttpSink final : public StatusSink {
public:
  explicit HttpSink(SinkConfig config);
  ~HttpSink() override;
  Delivery deliver(const SinkItem& item) override;
  void abort() override { aborted_ = true; }

  // What one response means (exposed for the unit tests).
  static Delivery::Outcome classify(long http_status);

private:
  // One attempt at one URL: outcome, and why it failed.
  Delivery post(const std::string& url, const std::string& body);
  SinkConfig config_;
  CURL* curl_ = nullptr; // kept: connections are reused between deliveries
  size_t preferred_ = 0;
  std::atomic<bool> aborted_{false};
};

} // namespace berth::agent
