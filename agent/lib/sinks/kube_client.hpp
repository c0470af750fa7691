// A minimal Kubernetes API client for the kubernetes sink: one JSON request to the first
// of its API servers that answers, over libcurl (loaded lazily) with client-certificate
// or bearer-token auth. Connection errors, timeouts, TLS errors, 429 and 5xx move on to
// the next server; the server that last answered is tried first.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/lib/sinks/kubeconfig.hpp"

namespace berth::agent {

struct KubeReply {
  long status = 0;     // HTTP status; 0 when no server answered
  nlohmann::json body; // the reply's JSON (null when empty or not JSON)
  std::string error;   // when status is 0 or not 2xx: what failed, for the log
  std::string server;  // the URL that answered (or was tried last)
  bool ok() const { return status >= 200 && status < 300; }
  // A Status object's reason (AlreadyExists, Conflict, NotFound, ...) or "".
  std::string reason() const;
};

constexpr size_t kMaxKubeReplyBytes = 8 << 20, kMaxKubeJsonDepth = 64;

// Parses a reply body with bounded nesting; throws berth::Error when too deep or invalid.
nlohmann::json parse_bounded_json(const std::string& text);

class KubeClient {
public:
  KubeClient(KubeCredentials creds, std::chrono::milliseconds timeout);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  // method and path (already escaped: "/api/v1/nodes/n1/status"); body null = none.
  // content_type defaults to application/json; accept is the Accept header.
  KubeReply call(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr,
                 const char* content_type = "application/json", const char* accept = "application/json");
  void abort() { aborted_ = true; }
  const std::string& server() const { return creds_.servers.at(preferred_); }

private:
  KubeReply once(const std::string& url, const std::string& method, const std::string& body, const char* content_type,
                 const char* accept);
  KubeCredentials creds_;
  std::chrono::milliseconds timeout_;
  CURL* curl_ = nullptr; // kept: connections (and TLS sessions) are reused
  size_t preferred_ = 0;
  std::atomic<bool> aborted_{false};
};

// Percent-escapes everything but unreserved characters (names are checked before anyway).
std::string url_escape(std::string_view s);

} // namespace berth::agent
