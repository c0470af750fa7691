// Frames built by hand for the SPDY codec's tests and fuzzing (draft 3, 2.2): bytes as
// the wire has them, valid or not, and comparisons of decoded frames.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cri/stream/spdy.hpp"

namespace berth::stream::spdy::wire_test {

inline std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

inline std::string control(uint16_t type, uint8_t flags, std::string_view payload, uint16_t version = 3) {
  return be32(0x80000000u | uint32_t{version} << 16 | type) + be32(uint32_t{flags} << 24 | payload.size()) +
         std::string(payload);
}

// A header block before compression; names and values as given, valid or not.
inline std::string raw_block(const std::vector<std::pair<std::string, std::string>>& headers, int count = -1) {
  std::string s = be32(count < 0 ? headers.size() : count);
  for (const auto& [n, v] : headers) s += be32(n.size()) + n + be32(v.size()) + v;
  return s;
}

// A header block "compressed" as zlib stored blocks (RFC 1950/1951), which any inflater
// reads: the zlib header naming the SPDY dictionary (id e3c6a7c2) on the connection's
// first block, then non-final stored blocks, as a sync flush leaves them.
inline std::string stored(std::string_view raw, bool first) {
  std::string s = first ? std::string("\x78\xbb\xe3\xc6\xa7\xc2", 6) : std::string();
  do {
    size_t n = std::min<size_t>(raw.size(), 65535);
    s += '\0';  // BFINAL 0, BTYPE 00 (stored), padding to the byte
    s += static_cast<char>(n & 0xff);
    s += static_cast<char>(n >> 8);
    s += static_cast<char>(~n & 0xff);
    s += static_cast<char>((~n >> 8) & 0xff);
    s += raw.substr(0, n);
    raw.remove_prefix(n);
  } while (!raw.empty());
  return s;
}

// DATA pieces of one wire frame joined again (consecutive pieces on one stream until fin).
inline std::vector<Frame> merged(std::vector<Frame> in) {
  std::vector<Frame> out;
  for (auto& f : in) {
    if (f.type == FrameType::data && !out.empty() && out.back().type == FrameType::data &&
        out.back().stream_id == f.stream_id && !out.back().fin) {
      out.back().data += f.data;
      out.back().fin = f.fin;
      continue;
    }
    out.push_back(std::move(f));
  }
  return out;
}

inline bool same(const Frame& a, const Frame& b) {
  return a.type == b.type && a.stream_id == b.stream_id && a.associated_id == b.associated_id &&
         a.priority == b.priority && a.slot == b.slot && a.fin == b.fin && a.unidirectional == b.unidirectional &&
         a.clear_settings == b.clear_settings && a.headers == b.headers && a.data == b.data && a.status == b.status &&
         a.delta == b.delta && a.ping_id == b.ping_id && a.settings == b.settings;
}

} // namespace berth::stream::spdy::wire_test
