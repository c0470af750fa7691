#include "cri/image/registry_hosts.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <toml++/toml.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "cri/image/registry_client.hpp"

namespace berth::image {
std::optional<std::string> read_config_file(const std::string& path, size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    fail_errno("open {}", path);
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) < 0) fail_errno("stat {}", path);
  if (!S_ISREG(st.st_mode)) fail_code(EINVAL, "{}: not a regular file", path);
  if (static_cast<uint64_t>(st.st_size) > max) fail_code(EFBIG, "{}: larger than {} bytes", path, max);
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read {}", path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

namespace {

std::string abs_path(const std::string& p, const std::string& dir) {
  return !p.empty() && p[0] == '/' ? p : path_join(dir, p);
}

struct Where {
  const std::string& file;
  [[noreturn]] void bad(const toml::node& n, std::string_view key, std::string_view what) const {
    fail_code(EINVAL, "{}:{}: {}: {}", file, n.source().begin.line, key, what);
  }
};

std::vector<std::string> string_or_array(const toml::node& n, const Where& w, std::string_view key) {
  std::vector<std::string> out;
  if (n.is_string()) {
    out.push_back(n.as_string()->get());
  } else if (n.is_array()) {
    for (const toml::node& e : *n.as_array()) {
      if (!e.is_string()) w.bad(e, key, "expected a string or an array of strings");
      out.push_back(e.as_string()->get());
    }
  } else {
    w.bad(n, key, "expected a string or an array of strings");
  }
  return out;
}

// The keys a host (or the top level, for the server) shares.
void read_host_keys(const toml::table& t, const Where& w, const std::string& prefix, const std::string& dir,
                    Endpoint& ep, std::vector<std::string>* warnings, const std::set<std::string>& also_known) {
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    std::string dotted = prefix.empty() ? key : prefix + "." + key;
    if (key == "capabilities") {
      ep.capabilities = 0;
      for (auto& c : string_or_array(v, w, dotted)) {
        if (c == "pull") ep.capabilities |= kCapPull;
        else if (c == "resolve") ep.capabilities |= kCapResolve;
        else if (c == "push") ep.capabilities |= kCapPush;
        else w.bad(v, dotted, fmt::format("unknown capability {} (pull, resolve, push)", quoted_value(c)));
      }
    } else if (key == "ca") {
      for (auto& p : string_or_array(v, w, dotted)) ep.ca_files.push_back(abs_path(p, dir));
    } else if (key == "client") {
      // "cert", ["cert", ...] or [["cert", "key"], ...]; a cert alone holds its key too.
      std::vector<std::pair<std::string, std::string>> pairs;
      if (v.is_string()) {
        pairs.emplace_back(v.as_string()->get(), "");
      } else if (v.is_array()) {
        for (const toml::node& e : *v.as_array()) {
          if (e.is_string()) {
            pairs.emplace_back(e.as_string()->get(), "");
          } else if (e.is_array() && e.as_array()->size() >= 1 && e.as_array()->size() <= 2) {
            auto parts = string_or_array(e, w, dotted);
            pairs.emplace_back(parts[0], parts.size() > 1 ? parts[1] : "");
          } else {
            w.bad(e, dotted, "expected a path or a [cert, key] pair");
          }
        }
      } else {
        w.bad(v, dotted, "expected a path, an array of paths or of [cert, key] pairs");
      }
      if (pairs.size() > 1 && warnings)
        warnings->push_back(fmt::format("{}: {}: only the first client certificate is used", w.file, dotted));
      if (!pairs.empty()) {
        ep.client_cert = abs_path(pairs[0].first, dir);
        ep.client_key = pairs[0].second.empty() ? ep.client_cert : abs_path(pairs[0].second, dir);
      }
    } else if (key == "skip_verify") {
      if (!v.is_boolean()) w.bad(v, dotted, "expected true or false");
      ep.skip_verify = v.as_boolean()->get();
    } else if (key == "override_path") {
      if (!v.is_boolean()) w.bad(v, dotted, "expected true or false");
      // applied by the caller, which knows the URL
    } else if (key == "header") {
      if (!v.is_table()) w.bad(v, dotted, "expected a table of header names");
      for (auto&& [name, value] : *v.as_table()) {
        std::string hname(name.str());
        bool token = !hname.empty() && std::all_of(hname.begin(), hname.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        });
        if (!token) w.bad(value, dotted, fmt::format("{} is not a header name", quoted_value(hname)));
        for (auto& hv : string_or_array(value, w, dotted + "." + hname)) {
          if (hv.find_first_of("\r\n") != std::string::npos)
            w.bad(value, dotted + "." + hname, "a header value must not hold a line break");
          ep.headers.push_back(hname + ": " + hv);
        }
      }
    } else if (!also_known.count(key) && warnings) {
      warnings->push_back(fmt::format("{}:{}: {}: unknown key, ignored", w.file, v.source().begin.line, dotted));
    }
  }
}

// Splits "scheme://authority/path" into base URL and API path (containerd: "/v2" is
// appended unless the path already ends in it or override_path is set).
void set_url(Endpoint& ep, const std::string& url_in, bool override_path, const Where& w, const toml::node& n,
             std::string_view key) {
  std::string url = url_in.find("://") == std::string::npos ? "https://" + url_in : url_in;
  size_t scheme = url.find("://");
  std::string s = scheme == std::string::npos ? "" : url.substr(0, scheme);
  if (s != "http" && s != "https")
    w.bad(n, key, fmt::format("{} is not an http:// or https:// URL", quoted_value(url)));
  size_t slash = url.find('/', scheme + 3);
  std::string authority = url.substr(scheme + 3, slash == std::string::npos ? std::string::npos : slash - scheme - 3);
  if (authority.empty() || authority.find_first_of("?#@ ") != std::string::npos)
    w.bad(n, key, fmt::format("{} has no usable host", quoted_value(url)));
  std::string path = slash == std::string::npos ? "" : url.substr(slash);
  while (path.ends_with('/')) path.pop_back();
  ep.base_url = s + "://" + authority;
  if (path.empty()) ep.api_path = "/v2";
  else if (override_path || path.ends_with("/v2")) ep.api_path = path;
  else ep.api_path = path + "/v2";
}

bool override_path_of(const toml::table& t) {
  const toml::node* n = t.get("override_path");
  return n && n->is_boolean() && n->as_boolean()->get();
}

} // namespace

std::string default_server(std::string_view domain) {
  std::string host = domain == "docker.io" ? "registry-1.docker.io" : std::string(domain);
  return (is_loopback_host(domain) ? "http://" : "https://") + host;
}

std::vector<std::string> split_path_list(std::string_view list) { return split(list, ':', true); }

std::vector<Endpoint> parse_hosts_toml(std::string_view text, const std::string& dir, std::string_view domain,
                                       std::vector<std::string>* warnings) {
  std::string file = path_join(dir, "hosts.toml");
  Where w{file};
  toml::table doc;
  try {
    doc = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    fail_code(EINVAL, "{}:{}:{}: invalid TOML: {}", file, e.source().begin.line, e.source().begin.column,
              e.description());
  }
  std::vector<Endpoint> out;
  if (const toml::node* hosts = doc.get("host")) {
    if (!hosts->is_table()) w.bad(*hosts, "host", "expected [host.\"URL\"] tables");
    // containerd keeps the file's order; a TOML table has none, the source lines do.
    std::vector<std::pair<std::string, const toml::node*>> entries;
    for (auto&& [url, node] : *hosts->as_table()) entries.emplace_back(std::string(url.str()), &node);
    std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) {
      return a.second->source().begin.line < b.second->source().begin.line;
    });
    if (entries.size() > kMaxHostEntries)
      fail_code(EINVAL, "{}: more than {} [host] tables", file, kMaxHostEntries);
    for (auto& [url, node] : entries) {
      std::string prefix = fmt::format("host.\"{}\"", url);
      if (!node->is_table()) w.bad(*node, prefix, "expected a table");
      Endpoint ep;
      ep.mirror = true;
      set_url(ep, url, override_path_of(*node->as_table()), w, *node, prefix);
      read_host_keys(*node->as_table(), w, prefix, dir, ep, warnings, {});
      out.push_back(std::move(ep));
    }
  }
  Endpoint server;
  if (const toml::node* s = doc.get("server")) {
    if (!s->is_string()) w.bad(*s, "server", "expected a URL string");
    set_url(server, s->as_string()->get(), override_path_of(doc), w, *s, "server");
  } else {
    set_url(server, default_server(domain), false, w, doc, "server");
  }
  read_host_keys(doc, w, "", dir, server, warnings, {"server", "host"});
  out.push_back(std::move(server));
  return out;
}

std::vector<Endpoint> legacy_cert_endpoints(const std::string& dir, std::string_view domain) {
  // Certificate files mean TLS: https even for a loopback host (which defaults to http).
  Endpoint ep;
  Where w{dir};
  toml::table none;
  std::string server = default_server(domain);
  if (server.starts_with("http://")) server = "https://" + server.substr(7);
  set_url(ep, server, false, w, none, "server");
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail_errno("open directory {}", dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (names.size() >= 1024) break;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (auto& n : names) {
    if (n.ends_with(".crt")) ep.ca_files.push_back(path_join(dir, n));
    if (n.ends_with(".cert") && ep.client_cert.empty()) {
      std::string key = n.substr(0, n.size() - 5) + ".key";
      if (!path_exists(path_join(dir, key)))
        fail_code(EINVAL, "{}: client certificate {} has no {}", dir, n, key);
      ep.client_cert = path_join(dir, n);
      ep.client_key = path_join(dir, key);
    }
  }
  return {ep};
}

std::optional<std::string> find_host_dir(const std::vector<std::string>& roots, std::string_view domain) {
  if (domain.empty() || domain == "." || domain == ".." || domain.find('/') != std::string_view::npos ||
      domain.find('\0') != std::string_view::npos)
    fail_code(EINVAL, "registry host {} cannot name a directory", quoted_value(domain));
  for (auto& root : roots) {
    for (std::string name : {std::string(domain), std::string("_default")}) {
      std::string dir = path_join(root, name);
      struct stat st{};
      if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return dir;
    }
  }
  return std::nullopt;
}

std::optional<std::vector<Endpoint>> load_host_dir(const std::vector<std::string>& roots, std::string_view domain) {
  auto dir = find_host_dir(roots, domain);
  if (!dir) return std::nullopt;
  auto text = read_config_file(path_join(*dir, "hosts.toml"), kMaxHostsFileBytes);
  if (!text) return legacy_cert_endpoints(*dir, domain);
  std::vector<std::string> warnings;
  auto eps = parse_hosts_toml(*text, *dir, domain, &warnings);
  for (auto& msg : warnings) log::warn("registry config: {}", msg);
  return eps;
}

} // namespace berth::image
