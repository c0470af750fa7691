#include "cri/image/overlay_snapshotter.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <map>
#include <random>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "cri/image/fs_util.hpp"

namespace berth::image {

OverlaySnapshotter::OverlaySnapshotter(std::string root, Metadata& md) : root_(std::move(root)), md_(md) {
  mkdir_p(root_, 0700);
}

std::string OverlaySnapshotter::dir_of(int64_t id) const { return fmt::format("{}/{}", root_, id); }

std::string OverlaySnapshotter::fs_dir(std::string_view key) const {
  auto row = md_.snapshot(std::string(key));
  if (!row) fail_code(ENOENT, "snapshot {} not found", key);
  return dir_of(row->id) + "/fs";
}

std::vector<std::string> OverlaySnapshotter::chain_dirs(std::string_view key) const {
  std::vector<std::string> dirs;
  std::string k(key);
  while (!k.empty()) {
    auto row = md_.snapshot(k);
    if (!row) fail_code(ENOENT, "snapshot {} not found", k);
    dirs.push_back(dir_of(row->id) + "/fs");
    k = row->parent;
    if (dirs.size() > 1000) fail("snapshot {}: parent chain too long (a cycle?)", key);
  }
  return dirs;
}

std::vector<Mount> OverlaySnapshotter::mounts_of(const SnapshotRow& row) const {
  std::string dir = dir_of(row.id);
  std::vector<std::string> lowers = row.parent.empty() ? std::vector<std::string>{} : chain_dirs(row.parent);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (auto& d : v) s += (s.empty() ? "" : ":") + d;
    return s;
  };
  if (row.kind == SnapshotKind::view) {
    if (lowers.empty()) return {{"bind", dir + "/fs", {"ro", "rbind"}}};
    if (lowers.size() == 1) return {{"bind", lowers[0], {"ro", "rbind"}}};
    return {{"overlay", "overlay", {"lowerdir=" + join(lowers)}}};
  }
  if (row.kind == SnapshotKind::committed) fail_code(EINVAL, "snapshot {} is committed: mount a view of it", row.key);
  if (lowers.empty()) return {{"bind", dir + "/fs", {"rw", "rbind"}}};
  return {{"overlay", "overlay",
           {"index=off", "workdir=" + dir + "/work", "upperdir=" + dir + "/fs", "lowerdir=" + join(lowers)}}};
}

std::vector<Mount> OverlaySnapshotter::create(std::string_view key, std::string_view parent, SnapshotKind kind) {
  if (key.empty()) fail("snapshot key is empty");
  int64_t id = md_.insert_snapshot(std::string(key), std::string(parent), kind);
  std::string dir = dir_of(id);
  try {
    mkdir_p(dir + "/fs", 0755);
    if (kind == SnapshotKind::active) mkdir_p(dir + "/work", 0700);
    return mounts_of(*md_.snapshot(std::string(key)));
  } catch (...) {
    md_.delete_snapshot(std::string(key));
    remove_tree(dir);
    throw;
  }
}

std::vector<Mount> OverlaySnapshotter::prepare(std::string_view key, std::string_view parent) {
  if (key.starts_with(kExtractPrefix)) fail_code(EINVAL, "prepare snapshot {}: the prefix {} is reserved", key, kExtractPrefix);
  return with_context(fmt::format("prepare snapshot {}", key), [&] { return create(key, parent, SnapshotKind::active); });
}

std::string OverlaySnapshotter::prepare_unpack(std::string_view chain, std::string_view parent) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string key = fmt::format("{}{:016x}-{}", kExtractPrefix, rng(), chain);
  with_context(fmt::format("prepare snapshot {}", key), [&] { return create(key, parent, SnapshotKind::active); });
  return key;
}

std::vector<Mount> OverlaySnapshotter::view(std::string_view key, std::string_view parent) {
  if (key.starts_with(kExtractPrefix)) fail_code(EINVAL, "view snapshot {}: the prefix {} is reserved", key, kExtractPrefix);
  return with_context(fmt::format("view snapshot {}", key), [&] { return create(key, parent, SnapshotKind::view); });
}

std::vector<Mount> OverlaySnapshotter::mounts(std::string_view key) const {
  auto row = md_.snapshot(std::string(key));
  if (!row) fail_code(ENOENT, "snapshot {} not found", key);
  return mounts_of(*row);
}

void OverlaySnapshotter::commit(std::string_view name, std::string_view key) { commit_unpacked(name, key, true); }

void OverlaySnapshotter::commit_unpacked(std::string_view name, std::string_view key, bool durable) {
  auto row = md_.snapshot(std::string(key));
  if (!row) fail_code(ENOENT, "commit snapshot {}: not found", key);
  md_.commit_snapshot(std::string(key), std::string(name), durable);
  // The workdir is overlay's scratch space; a committed layer never needs it.
  remove_tree(dir_of(row->id) + "/work");
}

void OverlaySnapshotter::remove(std::string_view key) {
  auto row = md_.snapshot(std::string(key));
  if (!row) fail_code(ENOENT, "remove snapshot {}: not found", key);
  if (md_.has_children(row->key)) fail_code(EBUSY, "remove snapshot {}: other snapshots use it as parent", key);
  md_.delete_snapshot(row->key);
  remove_tree(dir_of(row->id));
}

static SnapshotInfo to_info(const SnapshotRow& r) { return {r.key, r.parent, r.kind, r.created_ns}; }

std::optional<SnapshotInfo> OverlaySnapshotter::stat(std::string_view key) const {
  auto row = md_.snapshot(std::string(key));
  if (!row) return std::nullopt;
  return to_info(*row);
}

std::vector<SnapshotInfo> OverlaySnapshotter::list() const {
  std::vector<SnapshotInfo> out;
  for (auto& r : md_.snapshots()) out.push_back(to_info(r));
  return out;
}

SnapshotUsage OverlaySnapshotter::usage(std::string_view key) const {
  TreeUsage u = tree_usage(fs_dir(key));
  return {u.bytes, u.inodes};
}

void OverlaySnapshotter::recover() {
  // Layers not known to be on disk go, children first (a child is never durable before
  // its parent: a pull marks whole chains).
  for (bool progress = true; progress;) {
    progress = false;
    for (auto& r : md_.snapshots()) {
      if (r.kind != SnapshotKind::committed || r.durable || md_.has_children(r.key)) continue;
      md_.delete_snapshot(r.key);
      remove_tree(dir_of(r.id));
      progress = true;
    }
  }
  std::set<int64_t> known;
  for (auto& r : md_.snapshots()) {
    bool temp = std::string_view(r.key).starts_with(kExtractPrefix);
    if (temp || !path_exists(dir_of(r.id) + "/fs")) {
      if (!temp) log::warn("snapshots: dropping {} (its directory {} is missing)", r.key, dir_of(r.id));
      md_.delete_snapshot(r.key);
      continue;
    }
    known.insert(r.id);
  }
  DIR* d = ::opendir(root_.c_str());
  if (!d) fail_errno("open {}", root_);
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    auto id = parse_int(n);
    if (!id || !known.count(*id)) stale.push_back(n);
  }
  ::closedir(d);
  for (auto& n : stale) remove_tree(root_ + "/" + n);
}

size_t OverlaySnapshotter::collect_garbage(const std::set<std::string>& keep) {
  auto rows = md_.snapshots();
  std::map<std::string, std::string> parent_of;
  for (auto& r : rows) parent_of[r.key] = r.parent;
  std::set<std::string> live;
  auto mark = [&](std::string k) {
    while (!k.empty() && live.insert(k).second) k = parent_of.count(k) ? parent_of[k] : "";
  };
  for (auto& r : rows)
    if (r.kind != SnapshotKind::committed) mark(r.key);
  for (auto& k : keep) mark(k);
  // Children before parents: repeat while something could be removed.
  size_t removed = 0;
  for (bool progress = true; progress;) {
    progress = false;
    for (auto& r : md_.snapshots()) {
      if (live.count(r.key) || md_.has_children(r.key)) continue;
      md_.delete_snapshot(r.key);
      remove_tree(dir_of(r.id));
      ++removed;
      progress = true;
    }
  }
  return removed;
}

} // namespace berth::image
