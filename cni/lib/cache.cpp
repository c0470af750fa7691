#include "cni/lib/cache.hpp"

#include <dirent.h>
#include <unistd.h>

#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cni {

namespace {
constexpr std::string_view kKind = "cniCacheV1";
} // namespace

std::string encode_cache_entry(const CachedAttachment& a) {
  json j = {{"kind", kKind},          {"containerId", a.container_id}, {"config", base64_encode(a.config)},
            {"ifName", a.ifname},     {"networkName", a.network}};
  if (!a.netns.empty()) j["netns"] = a.netns;
  if (!a.cni_args.empty()) {
    json args = json::array();
    for (const auto& [k, v] : a.cni_args) args.push_back({k, v});
    j["cniArgs"] = std::move(args);
  }
  if (a.capability_args.is_object() && !a.capability_args.empty()) j["capabilityArgs"] = a.capability_args;
  if (!a.result.is_null()) j["result"] = a.result;
  return j.dump();
}

CachedAttachment decode_cache_entry(std::string_view bytes, const std::string& origin) {
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a JSON object", origin);
  if (j.value("kind", "") != kKind) fail("{}: kind is not \"{}\"", origin, kKind);
  CachedAttachment a;
  try {
    a.container_id = j.value("containerId", "");
    a.ifname = j.value("ifName", "");
    a.network = j.value("networkName", "");
    a.netns = j.value("netns", "");
    auto cfg = base64_decode(j.value("config", ""));
    if (!cfg) fail("{}: config: not base64", origin);
    a.config = std::move(*cfg);
    if (auto it = j.find("cniArgs"); it != j.end() && it->is_array())
      for (const auto& kv : *it) a.cni_args.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
    if (auto it = j.find("capabilityArgs"); it != j.end() && it->is_object()) a.capability_args = *it;
    if (auto it = j.find("result"); it != j.end()) a.result = *it;
  } catch (const json::exception& e) {
    fail("{}: {}", origin, e.what());
  }
  return a;
}

std::string ResultCache::path_for(const std::string& network, const std::string& cid, const std::string& ifname) const {
  if (network.empty() || cid.empty() || ifname.empty())
    fail("cache file path requires network name (\"{}\"), container ID (\"{}\"), and interface name (\"{}\")", network,
         cid, ifname);
  return path_join(path_join(dir_, "results"), fmt::format("{}-{}-{}", network, cid, ifname));
}

void ResultCache::put(const CachedAttachment& a) const {
  std::string p = path_for(a.network, a.container_id, a.ifname);
  with_context(fmt::format("write cached result {}", p), [&] {
    mkdir_p(path_join(dir_, "results"), 0700);
    write_file_atomic(p, encode_cache_entry(a), 0600, false);
  });
}

std::optional<CachedAttachment> ResultCache::get(const std::string& network, const std::string& cid,
                                                 const std::string& ifname) const {
  std::string p = path_for(network, cid, ifname);
  auto bytes = try_read_file(p);
  if (!bytes) return std::nullopt;
  return decode_cache_entry(*bytes, p);
}

void ResultCache::remove(const std::string& network, const std::string& cid, const std::string& ifname) const {
  std::string p = path_for(network, cid, ifname);
  if (::unlink(p.c_str()) < 0 && errno != ENOENT) fail_errno("remove cached result {}", p);
}

std::vector<CachedAttachment> ResultCache::list(const std::string& network) const {
  std::vector<CachedAttachment> out;
  std::string dir = path_join(dir_, "results");
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    if (!network.empty() && !starts_with(n, network + "-")) continue;
    try {
      auto bytes = try_read_file(path_join(dir, n));
      if (!bytes) continue;
      auto a = decode_cache_entry(*bytes, n);
      if (a.network.empty() || a.container_id.empty() || a.ifname.empty()) continue;
      if (!network.empty() && a.network != network) continue;
      out.push_back(std::move(a));
    } catch (const Error&) {
      // libcni skips files it cannot parse; so do we.
    }
  }
  return out;
}

} // namespace berth::cni
