#include "agent/lib/hash.hpp"

#include <nettle/md5.h>

namespace berth::agent {

std::string md5_hex(std::string_view data) {
  struct md5_ctx ctx;
  md5_init(&ctx);
  md5_update(&ctx, data.size(), reinterpret_cast<const uint8_t*>(data.data()));
  uint8_t digest[MD5_DIGEST_SIZE];
  md5_digest(&ctx, sizeof digest, digest);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof digest);
  for (uint8_t b : digest) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

} // namespace berth::agent
