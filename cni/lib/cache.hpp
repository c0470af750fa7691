// The attachment cache, in libcni's format so that tools built on libcni and
// Berth read each other's entries: <dir>/results/<network>-<containerID>-<ifname>
// holding {"kind":"cniCacheV1","containerId","config" (base64 of the network
// configuration's bytes),"ifName","networkName","netns","cniArgs","capabilityArgs","result"}.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/base64.hpp" // base64 of the cached config

#include "cni/lib/version.hpp"

namespace berth::cni {

inline constexpr std::string_view kDefaultCacheDir = "/var/lib/cni";

struct CachedAttachment {
  std::string network;
  std::string container_id;
  std::string ifname;
  std::string netns;
  std::string config; // raw bytes of the network configuration
  std::vector<std::pair<std::string, std::string>> cni_args;
  json capability_args = json::object();
  json result; // null when the file holds none
};

class ResultCache {
public:
  explicit ResultCache(std::string dir = std::string(kDefaultCacheDir)) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string path_for(const std::string& network, const std::string& cid, const std::string& ifname) const;

  void put(const CachedAttachment& a) const;
  // nullopt when absent; fails when present but unreadable.
  std::optional<CachedAttachment> get(const std::string& network, const std::string& cid,
                                      const std::string& ifname) const;
  void remove(const std::string& network, const std::string& cid, const std::string& ifname) const;
  // Every parsable entry, optionally only one network's (unparsable files are skipped, as libcni does).
  std::vector<CachedAttachment> list(const std::string& network = "") const;

private:
  std::string dir_;
};

// Cache file content <-> attachment.
std::string encode_cache_entry(const CachedAttachment& a);
CachedAttachment decode_cache_entry(std::string_view bytes, const std::string& origin);

} // namespace berth::cni
