// The SPDY codec gets random and mutated connections for a bounded time on every run
// (tests/lib/fuzz.hpp). Seeds are valid client byte streams from the codec's own encoder
// (deflated header blocks) and the same with header blocks in zlib stored blocks, which
// mutations can change without breaking the zlib stream, so that they reach the header
// block parser. Each input is decoded twice, whole and in random chunks: only
// berth::Error may escape, and both ways must give the same frames and the same verdict.
#include <zlib.h>

#include <optional>
#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "cri/stream/spdy.hpp"
#include "cri/stream/tests/spdy_frames.hpp"
#include "tests/lib/fuzz.hpp"

namespace berth::stream::spdy {
namespace {

using namespace wire_test;


std::vector<std::string> seeds() {
  std::vector<std::string> out;
  {  // an exec, as client-go opens it
    Codec c;
    std::string s;
    const char* types[] = {"error", "stdin", "stdout", "stderr", "resize"};
    for (uint32_t i = 0; i < 5; ++i)
      c.syn_stream(s, 2 * i + 1, 0, 0, {{"streamtype", types[i]}, {"requestid", "0"}}, false);
    Codec::data(s, 3, "ls -l /\n", false);
    Codec::ping(s, 1);
    Codec::data(s, 9, "{\"Width\":80,\"Height\":24}", false);
    Codec::data(s, 3, "", true);
    Codec::rst_stream(s, 5, kRstCancel);
    Codec::goaway(s, 0, kGoAwayOk);
    out.push_back(s);
  }
  {  // a port-forward, and a reply with several values
    Codec c;
    std::string s;
    c.syn_stream(s, 1, 0, 0, {{"streamtype", "error"}, {"port", "8080"}, {"requestid", "1"}}, false);
    c.syn_stream(s, 3, 0, 0, {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "1"}}, true, true);
    c.syn_reply(s, 3, {{"x-multi", std::string("a\0bb\0ccc", 8)}, {"empty", ""}}, false);
    c.headers(s, 3, {{":status", "200"}}, true);
    Codec::data(s, 3, std::string(300, 'p'), true);
    out.push_back(s);
  }
  {  // the frames nobody sends but the codec reads
    std::string s;
    Codec::settings(s, {{.flags = 1, .id = kSettingInitialWindowSize, .value = 65536}, {.id = 4, .value = 100}}, true);
    Codec::window_update(s, 0, 65536);
    Codec::window_update(s, 1, 1);
    s += control(10, 0, "credential");
    Codec::ping(s, 2);
    out.push_back(s);
  }
  {  // header blocks in stored blocks: mutations reach the header parser
    std::string s = control(1, 0,
                            be32(1) + be32(0) + std::string(2, '\0') +
                                stored(raw_block({{"streamtype", "stdin"}, {"port", "80"}}), true));
    s += control(8, 1, be32(1) + stored(raw_block({{"a", std::string("x\0y", 3)}, {"b", ""}}), false));
    s += control(2, 0, be32(1) + stored(raw_block({}), false));
    Codec::data(s, 1, "hi", true);
    out.push_back(s);
    out.push_back(control(1, 0, be32(1) + be32(0) + std::string(2, '\0') + stored(raw_block({{"host", "x"}}), true)));
  }
  return out;
}

const std::vector<std::string> kTokens = {std::string("\x80\x03\x00\x01", 4),
                                          std::string("\x80\x03\x00\x02", 4),
                                          std::string("\x80\x03\x00\x06\x00\x00\x00\x04", 8),
                                          std::string("\x80\x03\x00\x04", 4),
                                          std::string("\x80\x03\x00\x09\x00\x00\x00\x08", 8),
                                          std::string("\x80\x02", 2),
                                          std::string("\x00\x00\x00\x01", 4),
                                          std::string("\x00\x00\x00\x00", 4),
                                          std::string("\xff\xff\xff\xff", 4),
                                          std::string("\x7f\xff\xff\xff", 4),
                                          std::string("\x00\x00\xff\xff", 4),
                                          std::string("\x78\xbb\xe3\xc6\xa7\xc2", 6),
                                          std::string("\x01\x00\x00\x00", 4),
                                          std::string("\x00\xff\xff\xff", 4),
                                          std::string(1, '\0'),
                                          "streamtype",
                                          "host",
                                          "connection",
                                          "A"};

void check_frame(const Frame& f, const Limits& limits) {
  auto broken = [&](const char* what) {
    throw std::logic_error(std::string(frame_type_name(f.type)) + " frame breaks an invariant: " + what);
  };
  if (f.stream_id > kMaxStreamId || f.associated_id > kMaxStreamId) broken("stream id above 2^31 - 1");
  if (f.headers.size() > limits.max_headers) broken("more headers than the limit");
  size_t block = 4;
  for (const auto& [n, v] : f.headers) {
    if (n.empty()) broken("empty header name");
    for (unsigned char c : n)
      if (c <= 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z')) broken("header name not lower-case printable ASCII");
    if (!v.empty() && (v.front() == '\0' || v.back() == '\0')) broken("value with an empty part");
    block += 8 + n.size() + v.size();
  }
  if (block > limits.max_header_block) broken("header block over the limit");
  switch (f.type) {
  case FrameType::syn_stream:
  case FrameType::syn_reply:
  case FrameType::headers:
  case FrameType::rst_stream:
    if (f.stream_id == 0) broken("stream id 0");
    break;
  case FrameType::data:
    if (f.stream_id == 0) broken("DATA on stream 0");
    break;
  case FrameType::ping:
    if (f.ping_id == 0) broken("PING id 0");
    break;
  case FrameType::window_update:
    if (f.delta == 0 || f.delta > kMaxStreamId) broken("delta outside 1 to 2^31 - 1");
    break;
  default: break;
  }
}

// Decodes whole and in chunks (sizes drawn from the input itself, so a failure replays);
// the two must agree. Rethrows the decoder's berth::Error, if any.
void decode_both_ways(const std::string& input, const Limits& limits) {
  std::vector<Frame> whole, chunked;
  std::optional<Error> whole_error, chunked_error;
  Codec a(limits);
  try {
    a.feed(input, whole);
  } catch (const Error& e) {
    whole_error = e;
  }
  Codec b(limits);
  std::minstd_rand rng(static_cast<uint32_t>(std::hash<std::string>{}(input)));
  std::string_view rest = input;
  try {
    while (!rest.empty()) {
      size_t n = std::min<size_t>(rest.size(), 1 + rng() % (rng() % 2 ? 7 : 300));
      b.feed(rest.substr(0, n), chunked);
      rest.remove_prefix(n);
    }
  } catch (const Error& e) {
    chunked_error = e;
  }
  if (whole_error.has_value() != chunked_error.has_value())
    throw std::logic_error("whole and chunked decoding disagree: " +
                           std::string(whole_error ? whole_error->what() : chunked_error->what()));
  if (whole_error && whole_error->message() != chunked_error->message())
    throw std::logic_error("different errors: " + whole_error->message() + " / " + chunked_error->message());
  if (!whole_error && a.mid_frame() != b.mid_frame()) throw std::logic_error("mid_frame() disagrees");
  auto x = merged(std::move(whole)), y = merged(std::move(chunked));
  if (x.size() != y.size()) throw std::logic_error("whole and chunked decoding give different frame counts");
  for (size_t i = 0; i < x.size(); ++i) {
    if (!same(x[i], y[i])) throw std::logic_error("whole and chunked decoding differ at frame " + std::to_string(i));
    check_frame(x[i], limits);
  }
  if (whole_error) throw *whole_error;
}

TEST(SpdyFuzz, ConnectionsAreDecodedOrRefusedWithAnError) {
  size_t runs = fuzz::run(seeds(), kTokens, [](const std::string& input) { decode_both_ways(input, Limits{}); });
  // Small limits, so that mutations reach them.
  Limits small{.max_control_frame = 512, .max_header_block = 128, .max_headers = 3};
  runs += fuzz::run(seeds(), kTokens, [&](const std::string& input) { decode_both_ways(input, small); });
  EXPECT_GT(runs, 1000u);
}

// Header lists made from the input: whatever the encoder accepts, the decoder reads back
// the same; what it refuses is a berth::Error (EINVAL) and leaves its zlib stream usable.
TEST(SpdyFuzz, WhatTheEncoderWritesTheDecoderReads) {
  std::vector<std::string> header_seeds = {std::string("streamtype\x01stdin\x02port\x01"
                                                       "80",
                                                       20),
                                           std::string("a\x01x\0y\x02"
                                                       "b\x01",
                                                       9),
                                           "x-stream-protocol-version\x01v4"};
  Codec client;
  Codec server(Limits{.max_header_block = 1 << 20});  // inputs are up to 64 KiB plus lengths
  uint32_t id = 1;
  size_t runs =
      fuzz::run(header_seeds, {"\x01", "\x02", std::string(1, '\0'), "A", " ", "host"}, [&](const std::string& input) {
        HeaderList headers;
        std::string_view rest = input;
        while (!rest.empty() && headers.size() < 64) {
          size_t end = std::min(rest.find('\x02'), rest.size());
          std::string_view pair = rest.substr(0, end);
          size_t sep = std::min(pair.find('\x01'), pair.size());
          headers.emplace_back(pair.substr(0, sep), pair.substr(std::min(sep + 1, pair.size())));
          rest.remove_prefix(std::min(end + 1, rest.size()));
        }
        std::string wire;
        client.syn_stream(wire, id, 0, 0, headers, false);  // may throw EINVAL: allowed
        id = id + 2 > kMaxStreamId ? 1 : id + 2;
        std::vector<Frame> out;
        try {
          server.feed(wire, out);
        } catch (const Error& e) {
          throw std::logic_error(std::string("the decoder refused what the encoder wrote: ") + e.what());
        }
        if (out.size() != 1 || out[0].headers != headers) throw std::logic_error("a header list did not round-trip");
      });
  EXPECT_GT(runs, 1000u);
}

} // namespace
} // namespace berth::stream::spdy
