#include "cri/image/decompress.hpp"

#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "common/error.hpp"

namespace berth::image {

struct Decompressor::Codec {
  z_stream z{};
  bool z_init = false;
  ZSTD_DStream* zs = nullptr;
  ~Codec() {
    if (z_init) inflateEnd(&z);
    if (zs) ZSTD_freeDStream(zs);
  }
};

// The gzip trailer (CRC-32 and length) is neither computed nor checked:
// the blob's SHA-256 and the diff ID (SHA-256 of this output) are verified before a layer
// is committed, so the CRC adds nothing but ~7% of a pull's CPU. inflateValidate is
// exported by zlib >= 1.2.9 (set again after each member's reset).
namespace {
void skip_gzip_crc(z_stream* z) {
  if (inflateValidate(z, 0) != Z_OK) fail("gzip: cannot configure zlib");
}
} // namespace

Decompressor::Decompressor(SourceRead source)
    : source_(std::move(source)), in_(256 * 1024), codec_(std::make_unique<Codec>()) {
  // Sniff the magic from the first bytes.
  while (in_len_ < 4 && fill()) {
  }
  auto* b = reinterpret_cast<const unsigned char*>(in_.data());
  if (in_len_ >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
    kind_ = Compression::gzip;
    if (inflateInit2(&codec_->z, 15 + 16) != Z_OK) fail("gzip: cannot initialise zlib");
    codec_->z_init = true;
    skip_gzip_crc(&codec_->z);
  } else if (in_len_ >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
    kind_ = Compression::zstd;
    codec_->zs = ZSTD_createDStream();
    if (!codec_->zs || ZSTD_isError(ZSTD_initDStream(codec_->zs))) fail("zstd: cannot initialise the decoder");
  }
}

Decompressor::~Decompressor() = default;

bool Decompressor::fill() {
  if (source_done_) return false;
  if (in_pos_ > 0) {
    std::memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
    in_len_ -= in_pos_;
    in_pos_ = 0;
  }
  if (in_len_ == in_.size()) return true;
  size_t n = source_(in_.data() + in_len_, in_.size() - in_len_);
  if (n == 0) {
    source_done_ = true;
    return false;
  }
  in_len_ += n;
  return true;
}

size_t Decompressor::read(char* out, size_t cap) {
  if (cap == 0 || stream_end_) return 0;
  size_t produced = 0;
  while (produced == 0) {
    if (in_pos_ == in_len_ && !fill()) {
      if (kind_ == Compression::gzip) fail("gzip: truncated layer stream");
      if (kind_ == Compression::zstd && !zstd_frame_done_) fail("zstd: truncated layer stream");
      stream_end_ = true;
      return 0;
    }
    if (kind_ == Compression::none) {
      produced = std::min(cap, in_len_ - in_pos_);
      std::memcpy(out, in_.data() + in_pos_, produced);
      in_pos_ += produced;
    } else if (kind_ == Compression::gzip) {
      auto& z = codec_->z;
      z.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      z.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      z.next_out = reinterpret_cast<Bytef*>(out);
      z.avail_out = static_cast<uInt>(cap);
      int rc = inflate(&z, Z_NO_FLUSH);
      in_pos_ = in_len_ - z.avail_in;
      produced = cap - z.avail_out;
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members are one stream (RFC 1952); anything else after ends it.
        if (in_pos_ == in_len_) fill();
        if (in_pos_ < in_len_ && static_cast<unsigned char>(in_[in_pos_]) == 0x1f) {
          inflateReset(&z);
          skip_gzip_crc(&z);
        } else {
          stream_end_ = true;
          break;
        }
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail("gzip: corrupt layer stream ({})", z.msg ? z.msg : "inflate error");
      }
    } else {
      ZSTD_inBuffer ib{in_.data() + in_pos_, in_len_ - in_pos_, 0};
      ZSTD_outBuffer ob{out, cap, 0};
      size_t rc = ZSTD_decompressStream(codec_->zs, &ob, &ib);
      if (ZSTD_isError(rc)) fail("zstd: corrupt layer stream ({})", ZSTD_getErrorName(rc));
      in_pos_ += ib.pos;
      produced = ob.pos;
      zstd_frame_done_ = rc == 0;
    }
  }
  diff_.update(out, produced);
  return produced;
}

std::string Decompressor::finish() {
  char buf[64 * 1024];
  while (read(buf, sizeof buf) > 0) {
  }
  return diff_.digest();
}

} // namespace berth::image
