// Streaming decompression of a layer blob (gzip, zstd or none, told apart by magic bytes
// as containerd does) that also hashes the uncompressed stream: its digest is the layer's
// diff ID, checked against the image config before a snapshot is committed.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cri/image/digest.hpp"

namespace berth::image {

// Reads up to len compressed bytes; 0 at the end of the blob. Throws on failure.
using SourceRead = std::function<size_t(char* buf, size_t len)>;

enum class Compression { none, gzip, zstd };

class Decompressor {
public:
  explicit Decompressor(SourceRead source);
  ~Decompressor();
  // Up to cap uncompressed bytes; 0 at the end. Throws on corrupt input.
  size_t read(char* out, size_t cap);
  // Reads (and hashes) whatever is left, then returns the diff ID.
  std::string finish();
  Compression compression() const { return kind_; }

private:
  bool fill();  // more compressed input; false at the source's end
  SourceRead source_;
  Compression kind_ = Compression::none;
  std::vector<char> in_;
  size_t in_pos_ = 0, in_len_ = 0;
  bool source_done_ = false, stream_end_ = false, zstd_frame_done_ = false;
  struct Codec;
  std::unique_ptr<Codec> codec_;
  Sha256 diff_;
};

} // namespace berth::image
