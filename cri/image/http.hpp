// Every HTTP request of the image library (manifests, blobs, token requests, GET or POST)
// goes through http_request(): one place that configures a libcurl handle, so no request
// can miss a limit. Each request: http and https only, redirects included (at most 10);
// connect timeout 30 s; aborted when it moves less than 1 KiB/s for 60 s, at its
// deadline, or when `stop` says so (the pull's client went away); a buffered body is
// capped (max_body) and a streamed one is bounded by its sink; header values kept are
// bounded. libcurl is loaded lazily (cri/image/pull_libraries.hpp): callers hold a lease.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace berth::image {

// The body sink gets the bytes in order; returning false aborts the transfer.
using BodySink = std::function<bool(const char* data, size_t len)>;

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  const std::string* post_form = nullptr;  // POST application/x-www-form-urlencoded when set
  uint64_t range_from = 0;                 // "Range: bytes=<n>-" when > 0
  bool skip_verify = false;
  std::vector<std::string> ca_files;       // PEM bundles trusted besides the system's CAs
  std::string client_cert, client_key;     // TLS client certificate and key (PEM) when set
  size_t max_body = 4 << 20;               // bytes kept of a body that goes to no sink
  const BodySink* sink = nullptr;          // 200/206 bodies stream here when set
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<bool()> stop;              // polled during the transfer: true aborts it
};

struct HttpResponse {
  long status = 0;
  std::string content_type;      // without parameters, at most 256 bytes
  std::string www_authenticate;  // the last challenge; at most kMaxChallenge bytes
  bool challenge_too_long = false;
  std::string body;              // when no sink took it
  bool transport_ok = false;     // curl completed the transfer
  std::string error;             // curl's error when not transport_ok
  bool aborted = false;          // the sink refused bytes
  bool too_large = false;        // the buffered body passed max_body
  bool stopped = false;          // stop() said so
  bool timed_out = false;        // the deadline (or a curl timeout) hit
};

inline constexpr size_t kMaxChallenge = 16 << 10;

HttpResponse http_request(const HttpRequest& req);

// Percent-encoding for a query or form value (RFC 3986 unreserved kept).
std::string url_encode(std::string_view s);

// The pool of idle handles (keep-alive connections) and the TLS-session/DNS share are
// dropped; false when a handle is still in use. Called before libcurl is unloaded.
bool http_shutdown();

} // namespace berth::image
