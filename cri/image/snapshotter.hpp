// Overlay snapshotter: committed layers (keyed by chain ID) and writable container
// snapshots on top of them, in the spirit of containerd's snapshots.Snapshotter.
//
// On disk: <root>/snapshots/<numeric id>/fs (the layer's or container's upper dir) and
// <root>/snapshots/<id>/work (overlay workdir, active snapshots only). Names and the
// parent chain live in the store's SQLite metadata.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::image {

enum class SnapshotKind { committed, active, view };

// One mount(2) to perform, containerd's mount.Mount: type "overlay" or "bind".
struct Mount {
  std::string type;
  std::string source;
  std::vector<std::string> options;  // "lowerdir=...", "upperdir=...", "workdir=...", "ro", "rbind"
};

struct SnapshotInfo {
  std::string key;       // chain ID for committed layers, caller's name for active ones
  std::string parent;    // key of the committed parent, empty for a base layer
  SnapshotKind kind = SnapshotKind::committed;
  int64_t created_ns = 0;
};

struct SnapshotUsage {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};

class Snapshotter {
public:
  virtual ~Snapshotter() = default;
  // A writable snapshot `key` over the committed `parent` (empty: an empty root).
  // Returns the mounts that assemble it; fails if `key` exists or `parent` does not.
  virtual std::vector<Mount> prepare(std::string_view key, std::string_view parent) = 0;
  // A read-only view of `parent` (an overlay of its lower dirs, or a ro bind for one layer).
  virtual std::vector<Mount> view(std::string_view key, std::string_view parent) = 0;
  // Mounts of an existing active or view snapshot.
  virtual std::vector<Mount> mounts(std::string_view key) const = 0;
  // Turns active snapshot `key` into committed snapshot `name` (its upper dir becomes a layer).
  virtual void commit(std::string_view name, std::string_view key) = 0;
  // Removes a snapshot; fails if another snapshot has it as parent.
  virtual void remove(std::string_view key) = 0;
  virtual std::optional<SnapshotInfo> stat(std::string_view key) const = 0;
  virtual std::vector<SnapshotInfo> list() const = 0;
  // Disk space and inodes used by the snapshot's own directory (not its parents).
  virtual SnapshotUsage usage(std::string_view key) const = 0;
};

} // namespace berth::image
