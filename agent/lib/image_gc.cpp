#include "agent/lib/image_gc.hpp"

#include <sys/statvfs.h>

#include <algorithm>
#include <set>

#include "agent/lib/log.hpp"
#include "common/error.hpp"

namespace berth::agent {

std::vector<std::string> images_to_free(const std::map<std::string, ImageRecord>& records, uint64_t bytes,
                                        std::chrono::steady_clock::time_point now,
                                        std::chrono::milliseconds min_age) {
  std::vector<std::pair<std::string, const ImageRecord*>> candidates;
  for (auto& [id, r] : records)
    if (!r.in_use && !r.pinned && now - r.first_detected >= min_age) candidates.emplace_back(id, &r);
  std::sort(candidates.begin(), candidates.end(), [](auto& a, auto& b) {
    if (a.second->last_used != b.second->last_used) return a.second->last_used < b.second->last_used;
    if (a.second->first_detected != b.second->first_detected) return a.second->first_detected < b.second->first_detected;
    return a.first < b.first;
  });
  std::vector<std::string> out;
  uint64_t freed = 0;
  for (auto& [id, r] : candidates) {
    if (freed >= bytes) break;
    out.push_back(id);
    freed += r->size;
  }
  return out;
}

uint64_t bytes_to_free(uint64_t capacity, uint64_t available, int high_percent, int low_percent) {
  if (capacity == 0 || available > capacity || high_percent >= 100) return 0;
  uint64_t used_percent = 100 - available * 100 / capacity;
  if (used_percent < static_cast<uint64_t>(high_percent)) return 0;
  uint64_t target_available = capacity * static_cast<uint64_t>(100 - low_percent) / 100;
  return target_available > available ? target_available - available : 0;
}

ImageGc::ImageGc(const Config& config, CriClient& cri)
    : high_(config.image_gc_high_threshold_percent), low_(config.image_gc_low_threshold_percent),
      min_age_(config.image_minimum_gc_age), cri_(cri) {}

void ImageGc::detect() {
  auto now = std::chrono::steady_clock::now();
  auto images = cri_.list_images();
  // Every container counts, exited ones too: removing their image would break a restart
  // or `crictl logs`-style inspection (the kubelet lists all containers).
  std::set<std::string> used;
  for (auto& c : cri_.list_containers()) {
    used.insert(c.image_ref());
    used.insert(c.image_id());
    used.insert(c.image().image());
    if (!c.image().user_specified_image().empty()) used.insert(c.image().user_specified_image());
  }
  std::set<std::string> present;
  for (auto& img : images) {
    present.insert(img.id());
    auto [it, fresh] = records_.try_emplace(img.id());
    auto& r = it->second;
    if (fresh) r.first_detected = r.last_used = now;
    r.size = img.size();
    r.pinned = img.pinned();
    r.name = !img.repo_tags().empty() ? img.repo_tags(0) : !img.repo_digests().empty() ? img.repo_digests(0) : img.id();
    r.in_use = used.count(img.id()) > 0;
    for (auto& t : img.repo_tags()) r.in_use |= used.count(t) > 0;
    for (auto& d : img.repo_digests()) r.in_use |= used.count(d) > 0;
    if (r.in_use) r.last_used = now;
  }
  std::erase_if(records_, [&](auto& kv) { return !present.count(kv.first); });
  if (log_debug_enabled()) {
    std::vector<std::string> in_use;
    for (auto& [id, r] : records_)
      if (r.in_use) in_use.push_back(r.name);
    log_debug("image GC: {} images, in use: {}", records_.size(), fmt::join(in_use, ", "));
  }
}

void ImageGc::collect() {
  detect();
  auto filesystems = cri_.image_fs_info();
  if (filesystems.empty() || filesystems[0].fs_id().mountpoint().empty())
    fail("ImageFsInfo reported no image filesystem");
  auto mountpoint = filesystems[0].fs_id().mountpoint();
  struct statvfs fs;
  if (::statvfs(mountpoint.c_str(), &fs) != 0) fail_errno("statvfs {} (the image filesystem)", mountpoint);
  uint64_t capacity = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
  uint64_t available = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  uint64_t need = bytes_to_free(capacity, available, high_, low_);
  if (need == 0) {
    short_logged_ = false;
    return;
  }
  auto started = std::chrono::steady_clock::now();
  auto victims = images_to_free(records_, need, started, min_age_);
  if (victims.empty() && short_logged_) return; // said once already: not every period
  log_info("image filesystem {} is {}% full (high threshold {}%, {} of {} bytes available, images use {}): "
           "freeing {} bytes", mountpoint, 100 - available * 100 / capacity, high_, available, capacity,
           filesystems[0].used_bytes().value(), need);
  uint64_t freed = 0;
  size_t removed = 0;
  for (auto& id : victims) {
    auto& r = records_.at(id);
    try {
      cri_.remove_image(id);
    } catch (const std::exception& e) {
      if (!CriClient::is_not_found(e)) {
        log_error("image GC: remove image {} ({}): {}", r.name, id, e.what());
        continue;
      }
    }
    log_info("image GC: removed {} ({}, {} bytes)", r.name, id, r.size);
    freed += r.size;
    removed++;
    records_.erase(id);
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (freed < need) {
    log_error("image GC: freed {} of {} bytes ({} images in {} ms): the other images are in use, pinned or "
              "younger than imageMinimumGCAge ({})", freed, need, removed, ms.count(), format_duration(min_age_));
    short_logged_ = true;
  } else {
    log_info("image GC: freed {} bytes of the {} needed ({} images in {} ms)", freed, need, removed, ms.count());
    short_logged_ = false;
  }
}

} // namespace berth::agent
