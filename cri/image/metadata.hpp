// The store's metadata in SQLite (WAL, every change in a transaction): images and
// their names, the blobs each image references, snapshots and their parents.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cri/image/image_store.hpp"

struct sqlite3;

namespace berth::image {

struct SnapshotRow {
  int64_t id = 0;  // directory name under snapshots/
  std::string key, parent;
  SnapshotKind kind = SnapshotKind::committed;
  int64_t created_ns = 0;
  bool durable = true;  // false: committed by an unpack whose data may not be on disk yet
};

class Metadata {
public:
  explicit Metadata(const std::string& path);
  ~Metadata();
  Metadata(const Metadata&) = delete;
  Metadata& operator=(const Metadata&) = delete;

  // Images. `names` are normalised tags and repo digests; a name moves to this image.
  void put_image(const ImageRecord& rec, const std::vector<std::string>& blobs, int64_t created_ns);
  std::optional<ImageRecord> image(const std::string& id) const;
  std::optional<std::string> image_by_name(const std::string& name) const;
  std::vector<std::string> image_ids_with_prefix(const std::string& hex_prefix) const;
  std::vector<ImageRecord> images() const;  // without config_json
  bool delete_image(const std::string& id);
  bool set_pinned(const std::string& id, bool pinned);
  std::set<std::string> referenced_blobs() const;
  std::set<std::string> image_chain_ids() const;

  // Snapshots.
  int64_t insert_snapshot(const std::string& key, const std::string& parent, SnapshotKind kind);
  std::optional<SnapshotRow> snapshot(const std::string& key) const;
  std::vector<SnapshotRow> snapshots() const;
  // Renames `key` to `name` and marks it committed, in one transaction.
  void commit_snapshot(const std::string& key, const std::string& name, bool durable = true);
  // After a syncfs: these committed snapshots' data is on disk.
  void mark_durable(const std::vector<std::string>& keys);
  void delete_snapshot(const std::string& key);
  bool has_children(const std::string& key) const;

private:
  void exec(const char* sql) const;
  ImageRecord load_image(const std::string& id, bool with_config) const;  // caller holds mu_
  sqlite3* db_ = nullptr;
  std::string path_;
  mutable std::mutex mu_;
};

int64_t now_ns();

} // namespace berth::image
