#include "agent/lib/sinks/kubeconfig.hpp"

#include "agent/lib/manifest.hpp"
#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::agent {
namespace {

// The entry of a named list (clusters, users, contexts) called name.
JsonView named(const JsonView& doc, const char* list, const std::string& name) {
  std::optional<JsonView> found;
  doc[list].each([&](const JsonView& e) {
    if (!found && e.opt_string("name") == name) found = e;
  });
  if (!found) fail("{}: no entry named {}", list, quoted_value(name));
  return *found;
}

std::string decoded(const JsonView& v) {
  auto out = base64_decode(v.as_string());
  if (!out) v.bad("not valid base64");
  return *out;
}

std::string resolved(const JsonView& v, const std::string& dir) {
  auto p = v.as_string();
  if (p.empty()) v.bad("empty path");
  return p[0] == '/' ? p : dir + "/" + p;
}

} // namespace

KubeCredentials parse_kubeconfig(const std::string& text, const std::string& dir) {
  nlohmann::json j;
  try {
    j = yaml_to_json(text);
  } catch (const std::exception& e) {
    fail("not valid YAML: {}", e.what());
  }
  if (!j.is_object()) fail("not a kubeconfig (expected a mapping with clusters, users and contexts)");
  JsonView doc(j, "");
  auto current = doc.opt_string("current-context").value_or("");
  KubeCredentials c;
  std::string cluster_name, user_name;
  if (current.empty()) {
    // No current context: a kubeconfig with exactly one cluster and one user is unambiguous.
    if (doc["clusters"].size() != 1 || doc["users"].size() > 1)
      fail("current-context: required when there is not exactly one cluster");
    cluster_name = doc["clusters"].at(0).opt_string("name").value_or("");
    if (doc["users"].size() == 1) user_name = doc["users"].at(0).opt_string("name").value_or("");
  } else {
    auto ctx = named(doc, "contexts", current)["context"];
    cluster_name = ctx.opt_string("cluster").value_or("");
    user_name = ctx.opt_string("user").value_or("");
    if (cluster_name.empty()) fail("contexts: {}: no cluster", quoted_value(current));
  }
  auto cluster = JsonView(named(doc, "clusters", cluster_name).raw(), "clusters[" + cluster_name + "]")["cluster"];
  auto server = cluster["server"];
  if (!server.present()) server.bad("required");
  c.servers.push_back(server.as_string());
  auto& url = c.servers.back();
  if (url.rfind("https://", 0) != 0 && url.rfind("http://", 0) != 0) server.bad("must start with https:// (or http://)");
  for (unsigned char ch : url)
    if (ch <= ' ' || ch == 0x7f) server.bad("spaces and control characters are not allowed");
  if (auto ca = cluster["certificate-authority-data"]; ca.present()) c.ca_data = decoded(ca);
  else if (auto caf = cluster["certificate-authority"]; caf.present()) c.ca_file = resolved(caf, dir);
  c.insecure_skip_tls_verify = cluster.opt_bool("insecure-skip-tls-verify").value_or(false);
  if (!user_name.empty()) {
    auto user = JsonView(named(doc, "users", user_name).raw(), "users[" + user_name + "]")["user"];
    if (auto v = user["client-certificate-data"]; v.present()) c.cert_data = decoded(v);
    else if (auto f = user["client-certificate"]; f.present()) c.cert_file = resolved(f, dir);
    if (auto v = user["client-key-data"]; v.present()) c.key_data = decoded(v);
    else if (auto f = user["client-key"]; f.present()) c.key_file = resolved(f, dir);
    if (auto t = user["token"]; t.present()) c.token = t.as_string();
    else if (auto f = user["tokenFile"]; f.present()) c.token_file = resolved(f, dir);
    bool has_cert = !c.cert_data.empty() || !c.cert_file.empty(), has_key = !c.key_data.empty() || !c.key_file.empty();
    if (has_cert != has_key) fail("users[{}].user: client-certificate and client-key go together", user_name);
    for (auto unsupported : {"exec", "auth-provider", "username"})
      if (user[unsupported].present()) fail("users[{}].user.{}: not supported (use a client certificate or a token)", user_name, unsupported);
  }
  return c;
}

KubeCredentials load_kubeconfig(const std::string& path) {
  return with_context(path, [&] {
    auto dir = path.substr(0, path.rfind('/'));
    return parse_kubeconfig(read_bounded_file(path, kMaxKubeconfigBytes), dir.empty() ? "/" : dir);
  });
}

KubeCredentials kube_credentials(const SinkConfig& config) {
  KubeCredentials c;
  if (!config.kubeconfig.empty()) c = load_kubeconfig(config.kubeconfig);
  for (auto& url : config.urls)
    if (std::find(c.servers.begin(), c.servers.end(), url) == c.servers.end()) c.servers.push_back(url);
  if (!config.ca_file.empty()) {
    c.ca_file = config.ca_file;
    c.ca_data.clear();
  }
  if (!config.client_cert_file.empty()) {
    c.cert_file = config.client_cert_file;
    c.key_file = config.client_key_file;
    c.cert_data.clear();
    c.key_data.clear();
  }
  if (!config.bearer_token_file.empty()) {
    c.token_file = config.bearer_token_file;
    c.token.clear();
  }
  return c;
}

} // namespace berth::agent
