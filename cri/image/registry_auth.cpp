#include "cri/image/registry_auth.hpp"

#include <algorithm>

#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/subprocess.hpp"
#include "cri/image/registry_hosts.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {
namespace {

bool is_docker_hub(std::string_view h) {
  return h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io";
}

// An "auths" key without its scheme and trailing slashes: "quay.io/org", "docker.io".
// A key with a scheme is docker's legacy form, which names a host only.
std::string normalize_key(std::string_view key) {
  std::string_view k = key;
  bool legacy = false;
  if (size_t s = k.find("://"); s != std::string_view::npos) {
    k.remove_prefix(s + 3);
    legacy = true;
  }
  size_t slash = k.find('/');
  std::string host(k.substr(0, slash));
  std::string path = legacy || slash == std::string_view::npos ? "" : std::string(k.substr(slash));
  while (path.ends_with('/')) path.pop_back();
  if (is_docker_hub(host)) host = "docker.io";
  return host + path;
}

std::optional<Credentials> entry_credentials(const nlohmann::json& e, const std::string& where) {
  if (!e.is_object()) fail_code(EINVAL, "{}: expected an object", where);
  auto str = [&](const char* k) -> std::string {
    auto it = e.find(k);
    if (it == e.end() || it->is_null()) return {};
    if (!it->is_string()) fail_code(EINVAL, "{}.{}: expected a string", where, k);
    return it->get<std::string>();
  };
  Credentials c;
  if (std::string a = str("auth"); !a.empty()) {
    auto decoded = a.size() <= (64 << 10) ? base64_decode(a) : std::nullopt;
    size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) fail_code(EINVAL, "{}.auth: not base64 of user:password", where);
    c.username = decoded->substr(0, colon);
    c.password = decoded->substr(colon + 1);
  }
  if (std::string u = str("username"); !u.empty()) {
    c.username = u;
    c.password = str("password");
  }
  c.identity_token = str("identitytoken");
  c.registry_token = str("registrytoken");
  if (c.empty()) return std::nullopt;  // docker writes {} for hosts whose secret is in a credsStore
  return c;
}

} // namespace

std::string auth_key_host(std::string_view key) {
  std::string k = normalize_key(key);
  return k.substr(0, k.find('/'));
}

std::string helper_server_url(std::string_view domain) {
  return is_docker_hub(domain) ? "https://index.docker.io/v1/" : std::string(domain);
}

std::optional<Credentials> run_credential_helper(const std::string& name, const std::string& server_url,
                                                 const AuthSources& limits) {
  bool ok_name = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (!ok_name || name[0] == '.') fail_code(EINVAL, "credential helper {}: not a helper name", quoted_value(name));
  std::string prog = "docker-credential-" + name;
  std::string path = find_executable(prog, path_dirs());
  RunOptions ro;
  ro.input = server_url;
  ro.timeout = limits.helper_timeout;
  ro.max_output = limits.helper_max_output;
  CommandResult r = run_command(path, {"get"}, ro);
  std::string what = fmt::format("credential helper {} get {}", prog, server_url);
  if (r.timed_out)
    fail_code(ETIMEDOUT, "{}: no answer within {} ms (killed)", what, limits.helper_timeout.count());
  if (!r.ok()) {
    // The protocol's "not found" answer: docker-credential-helpers' credentials.ErrCredentialsNotFound.
    if (r.out.find("credentials not found") != std::string::npos) return std::nullopt;
    std::string msg(trim(r.err.empty() ? r.out : r.err));
    if (msg.empty()) fail_code(EIO, "{}: {}", what, r.describe());
    fail_code(EIO, "{}: {}: {}", what, r.describe(), excerpt(msg, 256));
  }
  if (r.truncated) fail_code(EINVAL, "{}: answer longer than {} bytes", what, limits.helper_max_output);
  auto j = parse_untrusted_json(r.out, what);
  if (!j.is_object()) fail_code(EINVAL, "{}: the answer is not a JSON object", what);
  auto field = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Credentials c;
  std::string user = field("Username"), secret = field("Secret");
  if (secret.empty()) fail_code(EINVAL, "{}: the answer has no Secret", what);
  if (user == "<token>") c.identity_token = secret;  // docker's marker for an identity token
  else {
    c.username = user;
    c.password = secret;
  }
  return c;
}

std::optional<Credentials> credentials_from_auth_json(std::string_view text, const std::string& file,
                                                      std::string_view domain, std::string_view repository,
                                                      const AuthSources& helpers) {
  nlohmann::json doc;
  try {
    doc = parse_untrusted_json(text, file, 8);
  } catch (const Error& e) {
    fail_code(EINVAL, "auth file {}: {}", file, e.message());
  }
  if (!doc.is_object()) fail_code(EINVAL, "auth file {}: expected a JSON object", file);
  std::string host = is_docker_hub(domain) ? "docker.io" : std::string(domain);
  auto object = [&](const char* k) -> const nlohmann::json* {
    auto it = doc.find(k);
    if (it == doc.end() || it->is_null()) return nullptr;
    if (!it->is_object()) fail_code(EINVAL, "auth file {}: {}: expected an object", file, k);
    return &*it;
  };
  if (const nlohmann::json* helpers_map = object("credHelpers")) {
    for (auto& [key, name] : helpers_map->items()) {
      if (auth_key_host(key) != host) continue;
      if (!name.is_string()) fail_code(EINVAL, "auth file {}: credHelpers.{}: expected a string", file, key);
      return with_context(fmt::format("auth file {}", file), [&] {
        return run_credential_helper(name.get<std::string>(), helper_server_url(domain), helpers);
      });
    }
  }
  if (const nlohmann::json* auths = object("auths")) {
    // The most specific key wins: host/ns/repo, then host/ns, ..., then host.
    std::string want = host + "/" + std::string(repository);
    const nlohmann::json* best = nullptr;
    size_t best_len = 0;
    for (auto& [key, entry] : auths->items()) {
      std::string k = normalize_key(key);
      bool match = k == want || (want.starts_with(k) && want[k.size()] == '/');
      if (match && (k.size() > best_len || !best)) {
        if (auto c = entry_credentials(entry, fmt::format("auth file {}: auths.{}", file, quoted_value(key)))) {
          best = &entry;
          best_len = k.size();
        }
      }
    }
    if (best) return entry_credentials(*best, file);
  }
  auto store = doc.find("credsStore");
  if (store != doc.end() && !store->is_null()) {
    if (!store->is_string()) fail_code(EINVAL, "auth file {}: credsStore: expected a string", file);
    if (!store->get<std::string>().empty())
      return with_context(fmt::format("auth file {}", file), [&] {
        return run_credential_helper(store->get<std::string>(), helper_server_url(domain), helpers);
      });
  }
  return std::nullopt;
}

std::optional<Credentials> credentials_from_auth_files(const AuthSources& sources, std::string_view domain,
                                                       std::string_view repository) {
  for (auto& file : sources.files) {
    auto text = read_config_file(file, kMaxAuthFileBytes);
    if (!text) continue;
    if (auto c = credentials_from_auth_json(*text, file, domain, repository, sources)) return c;
  }
  return std::nullopt;
}

} // namespace berth::image
