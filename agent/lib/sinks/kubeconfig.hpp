// How the kubernetes sink reaches its API servers: a kubeconfig file (the current
// context's cluster and user, as kubectl reads it) and/or the sink's own keys.
#pragma once

#include <string>
#include <vector>

#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

struct KubeCredentials {
  std::vector<std::string> servers; // tried in order
  // PEM text or a path for each; the *_data form comes from a kubeconfig's -data keys.
  std::string ca_file, ca_data, cert_file, cert_data, key_file, key_data;
  std::string token, token_file; // token_file is read at each request (rotation)
  bool insecure_skip_tls_verify = false;
  bool operator==(const KubeCredentials&) const = default;
};

constexpr size_t kMaxKubeconfigBytes = 256 << 10;

// Parses a kubeconfig's text: the current context's cluster (server,
// certificate-authority[-data], insecure-skip-tls-verify) and user
// (client-certificate[-data], client-key[-data], token, tokenFile). Relative paths are
// resolved against dir, as kubectl does. Throws berth::Error naming the key at fault.
KubeCredentials parse_kubeconfig(const std::string& text, const std::string& dir);
// Reads (bounded) and parses the file; errors name the path.
KubeCredentials load_kubeconfig(const std::string& path);

// The kubeconfig's (if any) then the sink's own keys: the servers key adds failover URLs
// after the kubeconfig's server; caFile, clientCertFile/clientKeyFile and bearerTokenFile
// override the kubeconfig's.
KubeCredentials kube_credentials(const SinkConfig& config);

} // namespace berth::agent
