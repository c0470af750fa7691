#include "cri/image/content_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/reference.hpp"

namespace berth::image {
namespace {

void fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) < 0) fail_errno("fsync directory {}", dir);
}

void check_digest(std::string_view digest) {
  if (!is_sha256_digest(digest)) fail("invalid digest \"{}\"", digest);
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

} // namespace

ContentStore::ContentStore(std::string root, bool fsync_blobs)
    : root_(std::move(root)), blobs_(root_ + "/content/blobs/sha256"), ingest_(root_ + "/content/ingest"),
      fsync_blobs_(fsync_blobs) {
  mkdir_p(blobs_, 0700);
  mkdir_p(ingest_, 0700);
  // The store's owner holds its root lock (ImageStore), so no other process writes here:
  // every temp file is a leftover, and so is every ".lock" file of older versions.
  DIR* d = ::opendir(ingest_.c_str());
  if (!d) fail_errno("open {}", ingest_);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(d);
  for (auto& n : names)
    if (n.ends_with(".tmp") || n.ends_with(".lock")) ::unlink((ingest_ + "/" + n).c_str());
}

std::string ContentStore::blob_path(std::string_view digest) const {
  check_digest(digest);
  return blobs_ + "/" + std::string(digest_hex(digest));
}

bool ContentStore::has(std::string_view digest) const { return ::access(blob_path(digest).c_str(), F_OK) == 0; }

std::optional<uint64_t> ContentStore::size(std::string_view digest) const {
  struct stat st;
  if (::stat(blob_path(digest).c_str(), &st) < 0) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

std::optional<std::string> ContentStore::read(std::string_view digest) const {
  return try_read_file(blob_path(digest));
}

UniqueFd ContentStore::open_blob(std::string_view digest) const {
  return UniqueFd(::open(blob_path(digest).c_str(), O_RDONLY | O_CLOEXEC));
}

void ContentStore::put(std::string_view digest, std::string_view data) {
  if (has(digest)) return;
  auto ingest = begin(digest, data.size());
  if (!ingest) return;
  ingest->write(data.data(), data.size());
  ingest->commit();
}

void ContentStore::remove(std::string_view digest) {
  if (::unlink(blob_path(digest).c_str()) < 0 && errno != ENOENT) fail_errno("remove blob {}", digest);
}

bool ContentStore::verify(std::string_view digest) const {
  UniqueFd fd = open_blob(digest);
  if (!fd) return false;
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  while (true) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read blob {}", digest);
    if (n == 0) break;
    hash.update(buf.data(), static_cast<size_t>(n));
  }
  return hash.digest() == digest;
}

void ContentStore::sync() const { fsync_dir(blobs_); }

std::vector<std::string> ContentStore::list() const {
  std::vector<std::string> out;
  DIR* d = ::opendir(blobs_.c_str());
  if (!d) fail_errno("open {}", blobs_);
  while (dirent* e = ::readdir(d)) {
    std::string name = "sha256:" + std::string(e->d_name);
    if (is_sha256_digest(name)) out.push_back(std::move(name));
  }
  ::closedir(d);
  return out;
}

std::optional<ContentStore::Ingest> ContentStore::begin(std::string_view digest, uint64_t size) {
  check_digest(digest);
  if (has(digest)) return std::nullopt;
  return Ingest(this, std::string(digest), size);
}

ContentStore::Ingest::Ingest(const ContentStore* store, std::string digest, uint64_t size)
    : store_(store), digest_(std::move(digest)), expected_size_(size) {
  temp_path_ = fmt::format("{}/{}.{}.tmp", store_->ingest_, digest_hex(digest_), random_suffix());
  fd_.reset(::open(temp_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd_) fail_errno("create {}", temp_path_);
}

ContentStore::Ingest::Ingest(Ingest&& o) noexcept
    : store_(o.store_), digest_(std::move(o.digest_)), temp_path_(std::move(o.temp_path_)),
      expected_size_(o.expected_size_), written_(o.written_), hash_(std::move(o.hash_)), fd_(std::move(o.fd_)),
      committed_(o.committed_) {
  o.committed_ = true;  // the moved-from object owns nothing to clean up
}

ContentStore::Ingest::~Ingest() {
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void ContentStore::Ingest::write(const char* data, size_t len) {
  if (written_ + len > expected_size_)
    fail("blob {}: more than the expected {} bytes", digest_, expected_size_);
  hash_.update(data, len);
  write_all(fd_.get(), std::string_view(data, len));
  written_ += len;
  // Start write-back of every full 8 MiB as it lands, so the fsync in commit() (or the
  // pull's syncfs) finds little left to do: the disk works while the network does.
  constexpr uint64_t kChunk = 8 << 20;
  if (written_ / kChunk != (written_ - len) / kChunk) {
    uint64_t end = written_ / kChunk * kChunk;
    ::sync_file_range(fd_.get(), static_cast<off_t>(end - kChunk), static_cast<off_t>(kChunk), SYNC_FILE_RANGE_WRITE);
  }
}

void ContentStore::Ingest::commit() {
  if (written_ != expected_size_) fail("blob {}: got {} bytes, expected {}", digest_, written_, expected_size_);
  std::string got = hash_.digest();
  if (got != digest_) fail("blob {}: content digest is {} (corrupted or tampered)", digest_, got);
  if (store_->fsync_blobs_ && ::fsync(fd_.get()) < 0) fail_errno("fsync {}", temp_path_);
  std::string final_path = store_->blob_path(digest_);
  if (::rename(temp_path_.c_str(), final_path.c_str()) < 0) fail_errno("rename {} to {}", temp_path_, final_path);
  committed_ = true;
}

} // namespace berth::image
