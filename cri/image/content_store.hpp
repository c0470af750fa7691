// Content-addressed blob store: <root>/content/blobs/sha256/<hex>, written through
// <root>/content/ingest/ (temp file [+ fsync] + rename). Writers of one digest do not wait
// for each other: each has its own temp file, every commit is verified, and the rename
// of identical content over identical content changes nothing (two registries may serve
// the same digest; a slow one must not hold up the other). One process owns the store
// (ImageStore's root lock), so temp files found at open are leftovers. The rename makes
// a blob appear whole or not at all to any process (SIGKILL safety). Power-loss durability is the caller's: with
// fsync_blobs each blob is fsynced and sync() makes the names durable; without it the
// caller syncs the filesystem (syncfs) before it records the blobs, and treats blobs it
// never recorded as suspect after a restart (ImageStore verifies them at open).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.hpp"
#include "cri/image/digest.hpp"

namespace berth::image {

class ContentStore {
public:
  // Creates the directories; removes ingest leftovers (the caller owns the store).
  explicit ContentStore(std::string root, bool fsync_blobs = true);

  std::string blob_path(std::string_view digest) const;
  bool has(std::string_view digest) const;
  std::optional<uint64_t> size(std::string_view digest) const;
  // Whole blob (for manifests and configs); nullopt when absent.
  std::optional<std::string> read(std::string_view digest) const;
  UniqueFd open_blob(std::string_view digest) const;  // invalid fd when absent
  // Verifies data against digest, stores it atomically (no-op when present).
  void put(std::string_view digest, std::string_view data);
  void remove(std::string_view digest);
  // Re-hashes a stored blob: true when its content matches its digest.
  bool verify(std::string_view digest) const;
  // fsync of the blobs directory: every rename done so far survives a power loss.
  void sync() const;
  std::vector<std::string> list() const;

  // An in-progress blob: bytes go to a temp file and a hasher; commit() verifies size
  // and digest, fsyncs (with fsync_blobs) and renames into place. Dropped uncommitted,
  // the temp file goes.
  class Ingest {
  public:
    Ingest(Ingest&&) noexcept;
    ~Ingest();
    void write(const char* data, size_t len);
    uint64_t written() const { return written_; }
    int fd() const { return fd_.get(); }
    // Throws (and leaves nothing behind) when the content is not what was expected. With
    // fsync_blobs the file is fsynced and its name durable after the store's next sync().
    void commit();

  private:
    friend class ContentStore;
    Ingest(const ContentStore* store, std::string digest, uint64_t size);
    const ContentStore* store_;
    std::string digest_, temp_path_;
    uint64_t expected_size_;
    uint64_t written_ = 0;
    Sha256 hash_;
    UniqueFd fd_;
    bool committed_ = false;
  };
  // nullopt when the blob is stored; otherwise a new Ingest (its own temp file).
  std::optional<Ingest> begin(std::string_view digest, uint64_t size);

  const std::string& root() const { return root_; }

private:
  std::string root_, blobs_, ingest_;
  bool fsync_blobs_;
};

} // namespace berth::image
