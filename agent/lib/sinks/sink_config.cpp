#include "agent/lib/sinks/sink_config.hpp"

#include <cctype>
#include <set>

#include <fmt/format.h>

#include "agent/lib/config.hpp"
#include "agent/lib/sinks/kubeconfig.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::agent {
namespace {

constexpr size_t kMaxSinks = 16, kMaxUrls = 16, kMaxUrlBytes = 2048;

const std::set<std::string_view> kCommonKeys = {"name", "type", "initialBackoff", "maxBackoff", "maxQueuedEvents"};
const std::set<std::string_view> kFileKeys = {"directory"};
const std::set<std::string_view> kHttpKeys = {"urls",          "method",         "timeout",       "bearerTokenFile",
                                              "basicAuthFile", "caFile",         "clientCertFile", "clientKeyFile"};
const std::set<std::string_view> kKubeKeys = {"kubeconfig",      "servers",        "timeout",       "nodeLeaseDuration",
                                              "bearerTokenFile", "caFile",         "clientCertFile", "clientKeyFile"};
const std::set<std::string_view> kEtcdKeys = {"endpoints", "prefix", "leaseTTL", "timeout"};
constexpr size_t kMaxPrefixBytes = 256;

// http:// or https://, a host, no spaces or control characters; libcurl does the rest.
void check_url(const std::string& url) {
  if (url.size() > kMaxUrlBytes) fail("{}: longer than {} bytes", quoted_value(url), kMaxUrlBytes);
  auto scheme_end = url.find("://");
  auto scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") fail("{}: must start with http:// or https://", quoted_value(url));
  auto host = url.substr(scheme_end + 3);
  if (host.empty() || host[0] == '/' || host[0] == ':') fail("{}: no host", quoted_value(url));
  for (unsigned char ch : url)
    if (ch <= ' ' || ch == 0x7f) fail("{}: spaces and control characters are not allowed", quoted_value(url));
}

// An etcd endpoint: http://host:port and nothing after the port (gRPC's target). No
// https: berthlet's gRPC is linked without TLS (3.5 MiB less RSS; docs/agent.md, "etcd").
void check_endpoint(const std::string& url) {
  check_url(url);
  if (url.starts_with("https://"))
    fail("{}: https is not supported (berthlet's gRPC has no TLS): use http:// on a trusted network", quoted_value(url));
  auto hostport = url.substr(url.find("://") + 3);
  auto colon = hostport.rfind(':');
  auto port = colon == std::string::npos || hostport.find(']', colon) != std::string::npos ? "" : hostport.substr(colon + 1);
  if (hostport.find('/') != std::string::npos || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) == 0 || std::stoi(port) > 65535)
    fail("{}: must be http://host:port", quoted_value(url));
}

// An etcd key prefix: "/" then '/'-separated parts of [A-Za-z0-9._-], none empty or "..".
void check_prefix(const std::string& prefix) {
  if (prefix.size() < 2 || prefix.size() > kMaxPrefixBytes || prefix[0] != '/')
    fail("{}: must start with '/' and be 2-{} bytes", quoted_value(prefix), kMaxPrefixBytes);
  bool empty_part = prefix.back() == '/' || prefix.find("//") != std::string::npos;
  for (auto& part : split(prefix.substr(1), '/')) {
    bool ok = !empty_part && part != "." && part != "..";
    for (unsigned char c : part) ok = ok && (std::isalnum(c) || c == '.' || c == '_' || c == '-');
    if (!ok) fail("{}: use '/'-separated parts of letters, digits, '.', '_' and '-'", quoted_value(prefix));
  }
}

void check_absolute(const std::string& path) {
  if (path.empty() || path[0] != '/') fail("{}: must be an absolute path", quoted_value(path));
  for (auto& part : split(path, '/'))
    if (part == "..") fail("{}: must not contain '..'", quoted_value(path));
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

std::chrono::milliseconds positive_duration(const JsonView& f) {
  auto d = parse_duration(f.as_string());
  if (d.count() <= 0) f.bad("must be positive");
  return d;
}

SinkConfig parse_one(const JsonView& v) {
  // An empty key: the message is about the entry itself.
  if (!v.raw().is_object()) fail(": must be a mapping with name, type and the type's keys");
  SinkConfig s;
  s.name = v["name"].present() ? v["name"].as_string() : "";
  if (s.name.empty()) fail("name: required");
  if (!valid_name(s.name)) fail("name: {}: use letters, digits, '-', '_' and '.'", quoted_value(s.name));
  s.type = v["type"].present() ? v["type"].as_string() : "";
  const std::set<std::string_view>* own;
  if (s.type == "file") own = &kFileKeys;
  else if (s.type == "http") own = &kHttpKeys;
  else if (s.type == "kubernetes") own = &kKubeKeys;
  else if (s.type == "etcd") own = &kEtcdKeys;
  else fail("type: {}: unknown sink type (file, http, etcd or kubernetes)", quoted_value(s.type));
  v.each_member([&](const std::string& key, const JsonView& f) {
    if (!kCommonKeys.count(key) && !own->count(key))
      fail("{}: unknown key for a {} sink (a typo?)", key, s.type);
    auto field = [&](auto&& fn) {
      try {
        fn();
      } catch (Error& e) {
        if (std::string_view(e.what()).rfind(key, 0) != 0) e.wrap(key);
        throw;
      }
    };
    field([&] {
      if (key == "initialBackoff") s.initial_backoff = positive_duration(f);
      else if (key == "maxBackoff") s.max_backoff = positive_duration(f);
      else if (key == "maxQueuedEvents") {
        auto n = f.as_int();
        if (n < 0 || n > 1000000) f.bad(fmt::format("{}: must be 0-1000000", n));
        s.max_queued_events = static_cast<size_t>(n);
      } else if (key == "directory") {
        s.directory = f.as_string();
        check_absolute(s.directory);
      } else if (key == "urls" || key == "servers") {
        s.urls = f.as_string_list();
        if (s.urls.empty() || s.urls.size() > kMaxUrls) f.bad(fmt::format("must list 1-{} URLs", kMaxUrls));
        for (auto& u : s.urls) check_url(u);
      } else if (key == "method") {
        s.method = f.as_string();
        if (s.method != "POST" && s.method != "PUT") f.bad(fmt::format("{}: must be POST or PUT", quoted_value(s.method)));
      } else if (key == "endpoints") {
        s.endpoints = f.as_string_list();
        if (s.endpoints.empty() || s.endpoints.size() > kMaxUrls) f.bad(fmt::format("must list 1-{} endpoints", kMaxUrls));
        for (auto& u : s.endpoints) check_endpoint(u);
      } else if (key == "prefix") {
        s.prefix = f.as_string();
        check_prefix(s.prefix);
      } else if (key == "leaseTTL") {
        s.lease_ttl = positive_duration(f);
        if (s.lease_ttl.count() % 1000 != 0 || s.lease_ttl < std::chrono::seconds(2) || s.lease_ttl > std::chrono::hours(1))
          f.bad(fmt::format("{}: must be whole seconds, 2s-1h", f.as_string()));
      } else if (key == "timeout") {
        s.timeout = positive_duration(f);
      } else if (key == "nodeLeaseDuration") {
        s.node_lease_duration = positive_duration(f);
        if (s.node_lease_duration < std::chrono::seconds(4)) f.bad("must be at least 4s (renewed every quarter of it)");
      } else if (key == "kubeconfig") {
        s.kubeconfig = f.as_string();
        check_absolute(s.kubeconfig);
        load_kubeconfig(s.kubeconfig); // a bad file is an error at start, naming the key
      } else if (key != "name" && key != "type") {
        auto path = f.as_string();
        check_absolute(path);
        if (key == "bearerTokenFile") s.bearer_token_file = path;
        else if (key == "basicAuthFile") s.basic_auth_file = path;
        else if (key == "caFile") s.ca_file = path;
        else if (key == "clientCertFile") s.client_cert_file = path;
        else if (key == "clientKeyFile") s.client_key_file = path;
      }
    });
  });
  if (s.max_backoff < s.initial_backoff) fail("maxBackoff: must not be less than initialBackoff");
  if (s.type == "file" && s.directory.empty()) fail("directory: required for a file sink");
  if (s.type == "kubernetes" && s.urls.empty() && s.kubeconfig.empty())
    fail("servers: a kubernetes sink needs kubeconfig or servers");
  if (s.type == "kubernetes" && s.client_cert_file.empty() != s.client_key_file.empty())
    fail("{}: clientCertFile and clientKeyFile go together", s.client_cert_file.empty() ? "clientCertFile" : "clientKeyFile");
  if (s.type == "etcd" && s.endpoints.empty()) fail("endpoints: required for an etcd sink");
  if (s.type == "http") {
    if (s.urls.empty()) fail("urls: required for an http sink");
    if (!s.bearer_token_file.empty() && !s.basic_auth_file.empty())
      fail("basicAuthFile: bearerTokenFile and basicAuthFile exclude each other");
    if (s.client_cert_file.empty() != s.client_key_file.empty())
      fail("{}: clientCertFile and clientKeyFile go together", s.client_cert_file.empty() ? "clientCertFile" : "clientKeyFile");
  }
  return s;
}

} // namespace

std::vector<SinkConfig> parse_status_sinks(const JsonView& list, const std::string& origin, const SinkKeyLine& line) {
  if (!list.raw().is_array()) fail("{}:{}: statusSinks: must be a list", origin, line(SIZE_MAX, ""));
  if (list.size() > kMaxSinks) fail("{}:{}: statusSinks: at most {} sinks", origin, line(SIZE_MAX, ""), kMaxSinks);
  std::vector<SinkConfig> out;
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); i++) {
    try {
      out.push_back(parse_one(JsonView(list.raw()[i], "")));
      if (!names.insert(out.back().name).second) fail("name: {}: used by an earlier sink", quoted_value(out.back().name));
    } catch (Error& e) {
      // The message starts with the key it is about: name its line.
      std::string msg = e.what();
      auto key = msg.substr(0, msg.find(':'));
      int at = line(i, key);
      auto where = fmt::format("statusSinks[{}]{}{}", i, key.empty() ? "" : ".", msg);
      throw Error(e.code(), at > 0 ? fmt::format("{}:{}: {}", origin, at, where) : fmt::format("{}: {}", origin, where));
    }
  }
  return out;
}

nlohmann::json status_sinks_to_json(const std::vector<SinkConfig>& sinks) {
  auto arr = nlohmann::json::array();
  for (auto& s : sinks) {
    nlohmann::json j = {{"name", s.name}, {"type", s.type}};
    j["initialBackoff"] = format_duration(s.initial_backoff);
    j["maxBackoff"] = format_duration(s.max_backoff);
    j["maxQueuedEvents"] = s.max_queued_events;
    if (s.type == "file") j["directory"] = s.directory;
    if (s.type == "http") {
      j["urls"] = s.urls;
      j["method"] = s.method;
      j["timeout"] = format_duration(s.timeout);
      for (auto [key, value] : {std::pair{"bearerTokenFile", &s.bearer_token_file}, {"basicAuthFile", &s.basic_auth_file},
                                {"caFile", &s.ca_file}, {"clientCertFile", &s.client_cert_file},
                                {"clientKeyFile", &s.client_key_file}})
        if (!value->empty()) j[key] = *value;
    }
    if (s.type == "kubernetes") {
      if (!s.kubeconfig.empty()) j["kubeconfig"] = s.kubeconfig;
      if (!s.urls.empty()) j["servers"] = s.urls;
      j["timeout"] = format_duration(s.timeout);
      j["nodeLeaseDuration"] = format_duration(s.node_lease_duration);
      for (auto [key, value] : {std::pair{"bearerTokenFile", &s.bearer_token_file}, {"caFile", &s.ca_file},
                                {"clientCertFile", &s.client_cert_file}, {"clientKeyFile", &s.client_key_file}})
        if (!value->empty()) j[key] = *value;
    }
    if (s.type == "etcd") {
      j["endpoints"] = s.endpoints;
      j["prefix"] = s.prefix;
      j["leaseTTL"] = format_duration(s.lease_ttl);
      j["timeout"] = format_duration(s.timeout);
    }
    arr.push_back(j);
  }
  return arr;
}

} // namespace berth::agent
