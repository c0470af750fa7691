// Snapshotter on overlayfs: <root>/<id>/fs is a snapshot's own directory (a layer's
// content once committed), <root>/<id>/work the overlay workdir of an active one.
// Rows in Metadata come first and directories second; open() reconciles both after a crash.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "cri/image/metadata.hpp"
#include "cri/image/snapshotter.hpp"

namespace berth::image {

// Keys of the unpacker's temporary snapshots; removed when the store opens.
inline constexpr std::string_view kExtractPrefix = "extract-";

class OverlaySnapshotter final : public Snapshotter {
public:
  OverlaySnapshotter(std::string root, Metadata& md);

  std::vector<Mount> prepare(std::string_view key, std::string_view parent) override;
  std::vector<Mount> view(std::string_view key, std::string_view parent) override;
  std::vector<Mount> mounts(std::string_view key) const override;
  void commit(std::string_view name, std::string_view key) override;
  void remove(std::string_view key) override;
  std::optional<SnapshotInfo> stat(std::string_view key) const override;
  std::vector<SnapshotInfo> list() const override;
  SnapshotUsage usage(std::string_view key) const override;

  // A temporary active snapshot for unpacking the layer `chain` over `parent`; returns its
  // key ("extract-<random>-<chain>", a prefix callers of prepare() cannot use).
  std::string prepare_unpack(std::string_view chain, std::string_view parent);
  // Commits an unpack snapshot as the layer `name`; not durable until mark_durable().
  void commit_unpacked(std::string_view name, std::string_view key, bool durable);
  void mark_durable(const std::vector<std::string>& keys) { md_.mark_durable(keys); }
  // fs directory of a snapshot; throws ENOENT when the key is unknown.
  std::string fs_dir(std::string_view key) const;
  // fs directories of `key` and its ancestors, top first.
  std::vector<std::string> chain_dirs(std::string_view key) const;
  // Removes temporary unpack snapshots, layers committed but never made durable (a power
  // loss may have cut their data), rows without directories and directories without rows.
  void recover();
  // Removes committed snapshots that are neither in `keep` nor an ancestor of a kept or
  // active snapshot. Returns how many went.
  size_t collect_garbage(const std::set<std::string>& keep);
  const std::string& root() const { return root_; }

private:
  std::string dir_of(int64_t id) const;
  std::vector<Mount> mounts_of(const SnapshotRow& row) const;
  std::vector<Mount> create(std::string_view key, std::string_view parent, SnapshotKind kind);
  std::string root_;
  Metadata& md_;
};

} // namespace berth::image
