// The statusSinks field of berthlet's config (a berthlet-only KubeletConfiguration
// field): one entry per sink, each with its type's keys and the common delivery keys.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth {
class JsonView;
}

namespace berth::agent {

struct SinkConfig {
  std::string name; // unique; labels its metrics and log lines
  std::string type; // file | http | etcd | kubernetes
  // Delivery (every type): back-off after a failed delivery, and the event queue's bound.
  std::chrono::milliseconds initial_backoff{500}, max_backoff{30000};
  size_t max_queued_events = 1000;
  // file
  std::string directory;
  // http
  std::vector<std::string> urls; // tried in order
  std::string method = "POST";   // POST | PUT
  std::chrono::milliseconds timeout{5000};
  std::string bearer_token_file, basic_auth_file; // basic: one "user:password" line
  std::string ca_file, client_cert_file, client_key_file;
  // kubernetes (also timeout, bearerTokenFile, caFile, clientCertFile, clientKeyFile; its
  // `servers` are kept in urls, after the kubeconfig's server)
  std::string kubeconfig;
  std::chrono::milliseconds node_lease_duration{40000};
  // etcd (also timeout)
  std::vector<std::string> endpoints; // http://host:port, tried in order
  std::string prefix = "/berth";
  std::chrono::milliseconds lease_ttl{10000}; // the <prefix>/alive/<node> key's lease
  bool operator==(const SinkConfig&) const = default;
};

// Where a key of statusSinks[index] is in the file (0: unknown), for error messages.
using SinkKeyLine = std::function<int(size_t index, const std::string& key)>;

// Parses and checks the statusSinks list. Throws berth::Error
// "<origin>:<line>: statusSinks[<i>].<key>: <what>" (an unknown type or key, a bad URL,
// a relative path, a duplicate name).
std::vector<SinkConfig> parse_status_sinks(const JsonView& list, const std::string& origin, const SinkKeyLine& line);

// The list as JSON (also valid YAML) for --print-config; parse_status_sinks reads it back.
nlohmann::json status_sinks_to_json(const std::vector<SinkConfig>& sinks);

} // namespace berth::agent
