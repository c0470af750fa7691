#include "cri/image/metadata.hpp"

#include <time.h>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/log.hpp"
#include "cri/image/manifest.hpp"
#include "cri/image/sqlite.hpp"

namespace berth::image {
namespace {

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  manifest_digest TEXT NOT NULL,
  config_json TEXT NOT NULL,
  size INTEGER NOT NULL,
  chain_ids TEXT NOT NULL,
  pinned INTEGER NOT NULL DEFAULT 0,
  created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_names (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  is_digest INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS image_names_by_image ON image_names(image_id);
CREATE TABLE IF NOT EXISTS image_blobs (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  digest TEXT NOT NULL,
  PRIMARY KEY (image_id, digest)
);
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent TEXT NOT NULL,
  kind INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  durable INTEGER NOT NULL DEFAULT 1
);
)sql";

} // namespace

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Metadata::Metadata(const std::string& path) : path_(path) {
  db_ = with_context("open metadata database", [&] { return open_database(path); });
  try {
    exec("PRAGMA foreign_keys=ON");
    exec(kSchema);
    // Stores made before snapshots had a durable column get it (every old row was synced).
    bool has_durable = false;
    {
      Stmt cols(db_, "PRAGMA table_info(snapshots)");
      while (cols.step()) has_durable |= cols.text(1) == "durable";
    }
    if (!has_durable) exec("ALTER TABLE snapshots ADD COLUMN durable INTEGER NOT NULL DEFAULT 1");
    // config.User beside the config, so that listing images never parses configs; stores
    // made before it get it filled in once, here.
    bool has_user = false;
    {
      Stmt cols(db_, "PRAGMA table_info(images)");
      while (cols.step()) has_user |= cols.text(1) == "user";
    }
    if (!has_user) exec("ALTER TABLE images ADD COLUMN user TEXT");
    std::vector<std::pair<std::string, std::string>> fill;
    {
      Stmt q(db_, "SELECT id, config_json FROM images WHERE user IS NULL");
      while (q.step()) {
        std::string user;
        try {
          user = config_user(q.text(1));
        } catch (const Error& e) {
          log::warn("image {}: {}; its user is taken as unset", q.text(0), e.what());
        }
        fill.emplace_back(q.text(0), std::move(user));
      }
    }
    for (auto& [id, user] : fill) Stmt(db_, "UPDATE images SET user = ?2 WHERE id = ?1").bind(1, id).bind(2, user).step();
  } catch (Error& e) {
    sqlite3_close(db_);
    e.wrap(fmt::format("open metadata database {}", path));
    throw;
  }
}

Metadata::~Metadata() { sqlite3_close(db_); }

void Metadata::exec(const char* sql) const { exec_sql(db_, sql, "metadata"); }

void Metadata::put_image(const ImageRecord& rec, const std::vector<std::string>& blobs, int64_t created_ns) {
  std::lock_guard lk(mu_);
  Txn txn(db_);
  Stmt(db_,
       "INSERT INTO images(id, manifest_digest, config_json, size, chain_ids, pinned, created_ns, user) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET manifest_digest=?2, config_json=?3, "
       "size=?4, chain_ids=?5, pinned=MAX(pinned, ?6), user=?8")
      .bind(1, rec.id)
      .bind(2, rec.manifest_digest)
      .bind(3, rec.config_json)
      .bind(4, static_cast<int64_t>(rec.size))
      .bind(5, nlohmann::json(rec.chain_ids).dump())
      .bind(6, int64_t{rec.pinned})
      .bind(7, created_ns)
      .bind(8, rec.user)
      .step();
  for (auto& n : rec.repo_tags)
    Stmt(db_, "INSERT OR REPLACE INTO image_names(name, image_id, is_digest) VALUES(?1, ?2, 0)")
        .bind(1, n)
        .bind(2, rec.id)
        .step();
  for (auto& n : rec.repo_digests)
    Stmt(db_, "INSERT OR REPLACE INTO image_names(name, image_id, is_digest) VALUES(?1, ?2, 1)")
        .bind(1, n)
        .bind(2, rec.id)
        .step();
  for (auto& b : blobs)
    Stmt(db_, "INSERT OR IGNORE INTO image_blobs(image_id, digest) VALUES(?1, ?2)").bind(1, rec.id).bind(2, b).step();
  // An image whose last name moved to another image is gone, as in containerd.
  Stmt(db_, "DELETE FROM images WHERE id NOT IN (SELECT image_id FROM image_names)").step();
  txn.commit();
}

ImageRecord Metadata::load_image(const std::string& id, bool with_config) const {
  ImageRecord rec;
  Stmt q(db_, with_config
                  ? "SELECT id, manifest_digest, size, chain_ids, pinned, user, config_json FROM images WHERE id = ?1"
                  : "SELECT id, manifest_digest, size, chain_ids, pinned, user FROM images WHERE id = ?1");
  q.bind(1, id);
  if (!q.step()) fail_code(ENOENT, "image {} not found", id);
  rec.id = q.text(0);
  rec.manifest_digest = q.text(1);
  rec.size = static_cast<uint64_t>(q.integer(2));
  rec.chain_ids = nlohmann::json::parse(q.text(3)).get<std::vector<std::string>>();
  rec.pinned = q.integer(4) != 0;
  rec.user = q.text(5);
  if (with_config) rec.config_json = q.text(6);
  Stmt n(db_, "SELECT name, is_digest FROM image_names WHERE image_id = ?1 ORDER BY name");
  n.bind(1, id);
  while (n.step()) (n.integer(1) ? rec.repo_digests : rec.repo_tags).push_back(n.text(0));
  return rec;
}

std::optional<ImageRecord> Metadata::image(const std::string& id) const {
  std::lock_guard lk(mu_);
  Stmt q(db_, "SELECT 1 FROM images WHERE id = ?1");
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return load_image(id, true);
}

std::optional<std::string> Metadata::image_by_name(const std::string& name) const {
  std::lock_guard lk(mu_);
  Stmt q(db_, "SELECT image_id FROM image_names WHERE name = ?1");
  q.bind(1, name);
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

std::vector<std::string> Metadata::image_ids_with_prefix(const std::string& hex_prefix) const {
  std::lock_guard lk(mu_);
  Stmt q(db_, "SELECT id FROM images WHERE substr(id, 8, ?2) = ?1");
  q.bind(1, hex_prefix).bind(2, static_cast<int64_t>(hex_prefix.size()));
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

std::vector<ImageRecord> Metadata::images() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> ids;
  Stmt q(db_, "SELECT id FROM images ORDER BY created_ns, id");
  while (q.step()) ids.push_back(q.text(0));
  std::vector<ImageRecord> out;
  for (auto& id : ids) out.push_back(load_image(id, false));
  return out;
}

bool Metadata::delete_image(const std::string& id) {
  std::lock_guard lk(mu_);
  Txn txn(db_);
  Stmt(db_, "DELETE FROM images WHERE id = ?1").bind(1, id).step();
  bool removed = sqlite3_changes(db_) > 0;
  txn.commit();
  return removed;
}

bool Metadata::set_pinned(const std::string& id, bool pinned) {
  std::lock_guard lk(mu_);
  Stmt(db_, "UPDATE images SET pinned = ?2 WHERE id = ?1").bind(1, id).bind(2, int64_t{pinned}).step();
  return sqlite3_changes(db_) > 0;
}

std::set<std::string> Metadata::referenced_blobs() const {
  std::lock_guard lk(mu_);
  std::set<std::string> out;
  Stmt q(db_, "SELECT DISTINCT digest FROM image_blobs");
  while (q.step()) out.insert(q.text(0));
  return out;
}

std::set<std::string> Metadata::image_chain_ids() const {
  std::lock_guard lk(mu_);
  std::set<std::string> out;
  Stmt q(db_, "SELECT chain_ids FROM images");
  while (q.step())
    for (auto& c : nlohmann::json::parse(q.text(0))) out.insert(c.get<std::string>());
  return out;
}

int64_t Metadata::insert_snapshot(const std::string& key, const std::string& parent, SnapshotKind kind) {
  std::lock_guard lk(mu_);
  Txn txn(db_);
  if (!parent.empty()) {
    Stmt p(db_, "SELECT kind FROM snapshots WHERE key = ?1");
    p.bind(1, parent);
    if (!p.step()) fail_code(ENOENT, "snapshot parent {} not found", parent);
    if (p.integer(0) != static_cast<int64_t>(SnapshotKind::committed))
      fail_code(EINVAL, "snapshot parent {} is not committed", parent);
  }
  Stmt exists(db_, "SELECT 1 FROM snapshots WHERE key = ?1");
  exists.bind(1, key);
  if (exists.step()) fail_code(EEXIST, "snapshot {} already exists", key);
  Stmt(db_, "INSERT INTO snapshots(key, parent, kind, created_ns) VALUES(?1, ?2, ?3, ?4)")
      .bind(1, key)
      .bind(2, parent)
      .bind(3, static_cast<int64_t>(kind))
      .bind(4, now_ns())
      .step();
  int64_t id = sqlite3_last_insert_rowid(db_);
  txn.commit();
  return id;
}

std::optional<SnapshotRow> Metadata::snapshot(const std::string& key) const {
  std::lock_guard lk(mu_);
  Stmt q(db_, "SELECT id, key, parent, kind, created_ns, durable FROM snapshots WHERE key = ?1");
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return SnapshotRow{q.integer(0), q.text(1), q.text(2), static_cast<SnapshotKind>(q.integer(3)), q.integer(4),
                     q.integer(5) != 0};
}

std::vector<SnapshotRow> Metadata::snapshots() const {
  std::lock_guard lk(mu_);
  std::vector<SnapshotRow> out;
  Stmt q(db_, "SELECT id, key, parent, kind, created_ns, durable FROM snapshots ORDER BY id");
  while (q.step())
    out.push_back({q.integer(0), q.text(1), q.text(2), static_cast<SnapshotKind>(q.integer(3)), q.integer(4),
                   q.integer(5) != 0});
  return out;
}

void Metadata::commit_snapshot(const std::string& key, const std::string& name, bool durable) {
  std::lock_guard lk(mu_);
  Txn txn(db_);
  Stmt exists(db_, "SELECT 1 FROM snapshots WHERE key = ?1");
  exists.bind(1, name);
  if (exists.step()) fail_code(EEXIST, "snapshot {} already exists", name);
  Stmt(db_, "UPDATE snapshots SET key = ?2, kind = ?3, durable = ?5 WHERE key = ?1 AND kind = ?4")
      .bind(1, key)
      .bind(2, name)
      .bind(3, static_cast<int64_t>(SnapshotKind::committed))
      .bind(4, static_cast<int64_t>(SnapshotKind::active))
      .bind(5, int64_t{durable})
      .step();
  if (sqlite3_changes(db_) != 1) fail_code(ENOENT, "active snapshot {} not found", key);
  txn.commit();
}

void Metadata::mark_durable(const std::vector<std::string>& keys) {
  std::lock_guard lk(mu_);
  Txn txn(db_);
  for (auto& k : keys) Stmt(db_, "UPDATE snapshots SET durable = 1 WHERE key = ?1").bind(1, k).step();
  txn.commit();
}

void Metadata::delete_snapshot(const std::string& key) {
  std::lock_guard lk(mu_);
  Stmt(db_, "DELETE FROM snapshots WHERE key = ?1").bind(1, key).step();
}

bool Metadata::has_children(const std::string& key) const {
  std::lock_guard lk(mu_);
  Stmt q(db_, "SELECT 1 FROM snapshots WHERE parent = ?1 LIMIT 1");
  q.bind(1, key);
  return q.step();
}

} // namespace berth::image
