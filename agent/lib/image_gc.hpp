// Image garbage collection, as the kubelet's image GC manager
// (pkg/kubelet/images/image_gc_manager.go): when the image filesystem is
// imageGCHighThresholdPercent full, unused images are removed, least recently used first,
// until it is imageGCLowThresholdPercent full. An image is used while any container (in
// any state) refers to it; pinned images and images berthlet first saw less than
// imageMinimumGCAge ago are kept.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/lib/config.hpp"
#include "agent/lib/cri_client.hpp"

namespace berth::agent {

struct ImageRecord {
  std::chrono::steady_clock::time_point first_detected, last_used;
  uint64_t size = 0;
  bool pinned = false;
  bool in_use = false;
  std::string name; // a tag or digest, for the log
};

// The images to remove to free `bytes`, in order (the kubelet's freeSpace): not in use,
// not pinned, first detected at least min_age before `now`, oldest last use first (then
// oldest first detection). Fewer than needed when not enough are eligible.
std::vector<std::string> images_to_free(const std::map<std::string, ImageRecord>& records, uint64_t bytes,
                                        std::chrono::steady_clock::time_point now,
                                        std::chrono::milliseconds min_age);

// The bytes to free so that usage falls to low_percent (0 below high_percent), from the
// image filesystem's capacity and available bytes (the kubelet's GarbageCollect).
uint64_t bytes_to_free(uint64_t capacity, uint64_t available, int high_percent, int low_percent);

class ImageGc {
public:
  ImageGc(const Config& config, CriClient& cri);
  // Learns which images exist and which are used (the kubelet's detectImages), then
  // collects if the image filesystem is over the high threshold. Every imageGCPeriod.
  void collect();

private:
  int high_, low_;
  std::chrono::milliseconds min_age_;
  CriClient& cri_;
  void detect();
  std::map<std::string, ImageRecord> records_; // image id -> what berthlet knows
  bool short_logged_ = false; // "could not free enough" was logged; not again every period
};

} // namespace berth::agent
