// Unit tests of the SPDY/3 codec (cri/stream/spdy.*): frames built by hand from the
// draft, bytes written by Go's spdystream, round trips of every frame type through two
// codecs (client and server), partial and chunked feeding, the zlib stream carried from
// block to block, and every rejection of hostile input with its message.
#include <zlib.h>

#include <cerrno>
#include <random>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "cri/stream/spdy.hpp"
#include "cri/stream/tests/spdy_frames.hpp"

namespace berth::stream::spdy {
namespace {

using namespace wire_test;

std::string data_frame(uint32_t id, uint8_t flags, std::string_view payload) {
  return be32(id) + be32(uint32_t{flags} << 24 | payload.size()) + std::string(payload);
}

std::string syn_stream_payload(uint32_t id, std::string_view block) {
  return be32(id) + be32(0) + std::string("\0\0", 2) + std::string(block);
}

// A deflater as a peer would run it (zlib defaults, the SPDY dictionary).
struct PeerDeflate {
  z_stream z{};
  PeerDeflate() {
    deflateInit(&z, Z_BEST_COMPRESSION);
    auto d = header_dictionary();
    deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(d.data()), d.size());
  }
  ~PeerDeflate() { deflateEnd(&z); }
  std::string compress(std::string_view in, int flush = Z_SYNC_FLUSH) {
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = in.size();
    do {
      char buf[16384];
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      deflate(&z, flush);
      out.append(buf, sizeof buf - z.avail_out);
    } while (z.avail_out == 0);
    return out;
  }
};

// --- Decoding helpers ---------------------------------------------------------------

std::vector<Frame> decode(std::string_view bytes, Limits limits = {}) {
  Codec c(limits);
  std::vector<Frame> out;
  c.feed(bytes, out);
  EXPECT_FALSE(c.mid_frame());
  return out;
}

void expect_same(const std::vector<Frame>& a, const std::vector<Frame>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same(a[i], b[i])) << "frame " << i;
}

// The message of the berth::Error (EPROTO) that decoding `bytes` throws; "" when none.
std::string violation(std::string_view bytes, Limits limits = {}) {
  Codec c(limits);
  std::vector<Frame> out;
  try {
    c.feed(bytes, out);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EPROTO) << e.what();
    return e.message();
  }
  return "";
}

#define EXPECT_VIOLATION(bytes, text)                                                                                  \
  do {                                                                                                                 \
    std::string msg_ = violation(bytes);                                                                               \
    EXPECT_NE(msg_.find(text), std::string::npos) << "message: '" << msg_ << "'";                                      \
  } while (0)

std::string bad_argument(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EINVAL) << e.what();
    return e.message();
  }
  return "";
}

// A client's side of an exec: what client-go sends, encoded by a client codec.
std::string conversation(Codec& client) {
  std::string out;
  client.syn_stream(out, 1, 0, 0, {{"streamtype", "error"}}, false);
  client.syn_stream(out, 3, 0, 0, {{"streamtype", "stdin"}, {"x-multi", std::string("a\0bb", 4)}}, false);
  client.syn_stream(out, 5, 0, 2, {{"streamtype", "stdout"}}, false);
  Codec::data(out, 3, "echo hello\n", false);
  Codec::ping(out, 1);
  Codec::data(out, 3, "", true);
  client.headers(out, 5, {{"foo", "bar"}}, false);
  Codec::rst_stream(out, 5, kRstCancel);
  Codec::goaway(out, 0, kGoAwayOk);
  return out;
}

// --- Tests --------------------------------------------------------------------------

TEST(SpdyDictionary, IsTheDraftsDictionary) {
  auto d = header_dictionary();
  EXPECT_EQ(d.size(), 1423u);
  // The dictionary id every SPDY/3 peer's zlib header carries.
  EXPECT_EQ(adler32(1, reinterpret_cast<const Bytef*>(d.data()), d.size()), 0xe3c6a7c2u);
}

TEST(SpdyExactBytes, StatelessFramesAreTheDraftsLayout) {
  std::string out;
  Codec::ping(out, 1);
  EXPECT_EQ(out, std::string("\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01", 12));
  out.clear();
  Codec::rst_stream(out, 3, kRstCancel);
  EXPECT_EQ(out, std::string("\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x05", 16));
  out.clear();
  Codec::goaway(out, 7, kGoAwayProtocolError);
  EXPECT_EQ(out, std::string("\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x07\x00\x00\x00\x01", 16));
  out.clear();
  Codec::window_update(out, 0, 0x10000);
  EXPECT_EQ(out, std::string("\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x00\x00\x01\x00\x00", 16));
  out.clear();
  Codec::settings(out, {{.flags = kSettingFlagPersistValue, .id = kSettingInitialWindowSize, .value = 65536}}, true);
  EXPECT_EQ(out, std::string("\x80\x03\x00\x04\x01\x00\x00\x0c\x00\x00\x00\x01\x01\x00\x00\x07\x00\x01\x00\x00", 20));
  out.clear();
  Codec::data(out, 1, "hello", true);
  EXPECT_EQ(out, std::string("\x00\x00\x00\x01\x01\x00\x00\x05hello", 13));
  // The same bytes decode to the same frames.
  std::string all = control(6, 0, be32(1)) + data_frame(1, 1, "hello");
  auto fs = decode(all);
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs[0].type, FrameType::ping);
  EXPECT_EQ(fs[0].ping_id, 1u);
  EXPECT_EQ(fs[1].type, FrameType::data);
  EXPECT_EQ(fs[1].stream_id, 1u);
  EXPECT_TRUE(fs[1].fin);
  EXPECT_EQ(fs[1].data, "hello");
}

TEST(SpdyExactBytes, HandBuiltSynStreamsAndHeadersDecode) {
  // SYN_STREAM: stream 1, associated 0, priority 3, FIN | UNIDIRECTIONAL.
  std::string block1 = stored(raw_block({{"streamtype", "stdin"}, {"port", "80"}}), true);
  std::string f1 = control(1, 0x03, be32(1) + be32(0) + std::string("\x60\x00", 2) + block1);
  // The next block goes on in the same zlib stream: no zlib header.
  std::string f2 = control(1, 0, syn_stream_payload(3, stored(raw_block({{"streamtype", "data"}}), false)));
  std::string f3 = control(8, 0x01, be32(3) + stored(raw_block({{"a", std::string("x\0y", 3)}}), false));
  auto fs = decode(f1 + f2 + f3);
  ASSERT_EQ(fs.size(), 3u);
  EXPECT_EQ(fs[0].type, FrameType::syn_stream);
  EXPECT_EQ(fs[0].stream_id, 1u);
  EXPECT_EQ(fs[0].priority, 3);
  EXPECT_TRUE(fs[0].fin);
  EXPECT_TRUE(fs[0].unidirectional);
  EXPECT_EQ(fs[0].headers, (HeaderList{{"streamtype", "stdin"}, {"port", "80"}}));
  EXPECT_EQ(fs[1].stream_id, 3u);
  EXPECT_FALSE(fs[1].fin);
  EXPECT_EQ(fs[1].headers, (HeaderList{{"streamtype", "data"}}));
  EXPECT_EQ(fs[2].type, FrameType::headers);
  EXPECT_TRUE(fs[2].fin);
  EXPECT_EQ(split_values(*find_header(fs[2].headers, "a")), (std::vector<std::string_view>{"x", "y"}));
}

TEST(SpdyExactBytes, SynReplyIsAZlibBlockWithTheDictionaryAndASyncFlush) {
  Codec c;
  std::string out;
  c.syn_reply(out, 1, {}, false);
  ASSERT_GE(out.size(), 18u);
  EXPECT_EQ(out.substr(0, 4), std::string("\x80\x03\x00\x02", 4));
  EXPECT_EQ(static_cast<uint8_t>(out[4]), 0);  // flags
  EXPECT_EQ(out.size() - 8, (uint8_t(out[5]) << 16 | uint8_t(out[6]) << 8 | uint8_t(out[7])));
  EXPECT_EQ(out.substr(8, 4), be32(1));
  std::string block = out.substr(12);
  EXPECT_EQ(block[0] & 0x0f, 8);  // CM deflate
  EXPECT_TRUE(block[1] & 0x20);   // FDICT
  EXPECT_EQ(block.substr(2, 4), "\xe3\xc6\xa7\xc2");
  EXPECT_EQ(block.substr(block.size() - 4), std::string("\x00\x00\xff\xff", 4));
  // Any inflater with the dictionary reads the raw block: a header count of 0.
  z_stream z{};
  ASSERT_EQ(inflateInit(&z), Z_OK);
  char buf[64];
  z.next_in = reinterpret_cast<Bytef*>(block.data());
  z.avail_in = block.size();
  z.next_out = reinterpret_cast<Bytef*>(buf);
  z.avail_out = sizeof buf;
  ASSERT_EQ(inflate(&z, Z_SYNC_FLUSH), Z_NEED_DICT);
  auto d = header_dictionary();
  ASSERT_EQ(inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(d.data()), d.size()), Z_OK);
  EXPECT_EQ(inflate(&z, Z_SYNC_FLUSH), Z_OK);
  EXPECT_EQ(std::string(buf, sizeof buf - z.avail_out), be32(0));
  EXPECT_EQ(z.avail_in, 0u);
  inflateEnd(&z);
}

// Written by spdystream's Framer (Go): five SYN_STREAMs of an exec (the second with a
// two-valued header), DATA, an empty DATA with FIN, PING, SETTINGS, WINDOW_UPDATE,
// HEADERS, RST_STREAM, SYN_REPLY, GOAWAY.
constexpr std::string_view kGoFramerHex =
    "80030001000000340000000100000000000078f9e3c6a7c202e50e703a2b294a4dcc851625aca9a080666060e02c8244"
    "5b262839331a00000000ffff800300010000002a0000000300000000000002a550aca2ec15bab9a5392599a0cc92c890"
    "9484696271494a661e000000ffff800300010000001c00000005000000000000c26a195b71494a3eb8d4473317000000"
    "ffff80030001000000190000000700000000000082aac614c5d49f5a5404000000ffff800300010000001b0000000900"
    "0000000000c26e76516a7166552aa62900000000ffff000000030000000568656c6c6f00000003010000008003000600"
    "00000400000001800300040000000c000000010100000700010000800300090000000800000001000003e88003000800"
    "00001600000005021120dfa4e5e783a8a4c42200000000ffff8003000300000008000000090000000580030002000000"
    "0e000000026260606000000000ffff80030007000000080000000000000000";

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

TEST(SpdyInterop, DecodesWhatGosFramerWrites) {
  std::string bytes = unhex(kGoFramerHex);
  auto fs = decode(bytes);
  ASSERT_EQ(fs.size(), 14u);
  const char* types[] = {"error", "stdin", "stdout", "stderr", "resize"};
  for (uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(fs[i].type, FrameType::syn_stream);
    EXPECT_EQ(fs[i].stream_id, 2 * i + 1);
    EXPECT_EQ(find_header(fs[i].headers, "streamtype"), types[i]);
    EXPECT_EQ(find_header(fs[i].headers, "requestid"), "0");
  }
  EXPECT_EQ(find_header(fs[1].headers, "x-multi"), std::string_view("a\0bb", 4));
  EXPECT_EQ(fs[5].data, "hello");
  EXPECT_TRUE(fs[6].fin && fs[6].data.empty());
  EXPECT_EQ(fs[7].ping_id, 1u);
  EXPECT_EQ(fs[8].settings, (std::vector<Setting>{{.flags = 1, .id = kSettingInitialWindowSize, .value = 65536}}));
  EXPECT_EQ(fs[9].delta, 1000u);
  EXPECT_EQ(fs[10].headers, (HeaderList{{"foo", "bar"}}));
  EXPECT_EQ(fs[11].status, kRstCancel);
  EXPECT_EQ(fs[12].type, FrameType::syn_reply);
  EXPECT_TRUE(fs[12].headers.empty());
  EXPECT_EQ(fs[13].type, FrameType::goaway);
  // Byte by byte, the same frames.
  Codec c;
  std::vector<Frame> pieces;
  for (char b : bytes) c.feed(std::string_view(&b, 1), pieces);
  expect_same(merged(pieces), merged(fs));
}

TEST(SpdyRoundTrip, EveryFrameType) {
  // Each direction has its own zlib stream: the client's frames go to one decoder, the
  // server's to another, as on a connection.
  Codec client, server;
  std::string up, down;
  client.syn_stream(up, 1, 0, 7, {{"streamtype", "data"}, {"port", "8080"}}, true, true);
  client.syn_stream(up, 3, 1, 0, {}, false);
  client.headers(up, 3, {{"a", ""}}, true);
  Codec::data(up, 3, std::string("\0binary\xff", 8), false);
  Codec::data(up, 3, "", true);
  Codec::rst_stream(up, 3, kRstStreamAlreadyClosed);
  Codec::settings(up, {{.flags = 0, .id = kSettingMaxConcurrentStreams, .value = 100},
                       {.flags = kSettingFlagPersisted, .id = 0xffffff, .value = 0xffffffff}});
  Codec::settings(up, {}, true);
  Codec::ping(up, 0xffffffff);
  Codec::goaway(up, kMaxStreamId, kGoAwayInternalError);
  Codec::window_update(up, 0, kMaxStreamId);
  Codec::window_update(up, 5, 1);
  server.syn_reply(down, 1, {{"x-stream-protocol-version", "v4.channel.k8s.io"}}, true);
  server.syn_reply(down, 3, {}, false);
  server.headers(down, 3, {{"b", "c"}}, false);

  auto fs = decode(up);
  ASSERT_EQ(fs.size(), 12u);
  EXPECT_EQ(fs[0].type, FrameType::syn_stream);
  EXPECT_EQ(fs[0].stream_id, 1u);
  EXPECT_EQ(fs[0].priority, 7);
  EXPECT_TRUE(fs[0].fin && fs[0].unidirectional);
  EXPECT_EQ(fs[0].headers, (HeaderList{{"streamtype", "data"}, {"port", "8080"}}));
  EXPECT_EQ(fs[1].associated_id, 1u);
  EXPECT_FALSE(fs[1].fin || fs[1].unidirectional);
  EXPECT_TRUE(fs[1].headers.empty());
  EXPECT_EQ(fs[2].type, FrameType::headers);
  EXPECT_TRUE(fs[2].fin);
  EXPECT_EQ(fs[2].headers, (HeaderList{{"a", ""}}));
  EXPECT_EQ(fs[3].type, FrameType::data);
  EXPECT_EQ(fs[3].data, std::string("\0binary\xff", 8));
  EXPECT_FALSE(fs[3].fin);
  EXPECT_TRUE(fs[4].fin && fs[4].data.empty());
  EXPECT_EQ(fs[5].type, FrameType::rst_stream);
  EXPECT_EQ(fs[5].stream_id, 3u);
  EXPECT_EQ(fs[5].status, kRstStreamAlreadyClosed);
  EXPECT_EQ(fs[6].type, FrameType::settings);
  ASSERT_EQ(fs[6].settings.size(), 2u);
  EXPECT_EQ(fs[6].settings[0], (Setting{.flags = 0, .id = kSettingMaxConcurrentStreams, .value = 100}));
  EXPECT_EQ(fs[6].settings[1], (Setting{.flags = kSettingFlagPersisted, .id = 0xffffff, .value = 0xffffffff}));
  EXPECT_FALSE(fs[6].clear_settings);
  EXPECT_TRUE(fs[7].clear_settings && fs[7].settings.empty());
  EXPECT_EQ(fs[8].type, FrameType::ping);
  EXPECT_EQ(fs[8].ping_id, 0xffffffffu);
  EXPECT_EQ(fs[9].type, FrameType::goaway);
  EXPECT_EQ(fs[9].stream_id, kMaxStreamId);
  EXPECT_EQ(fs[9].status, kGoAwayInternalError);
  EXPECT_EQ(fs[10].type, FrameType::window_update);
  EXPECT_EQ(fs[10].stream_id, 0u);
  EXPECT_EQ(fs[10].delta, kMaxStreamId);
  EXPECT_EQ(fs[11].stream_id, 5u);
  EXPECT_EQ(fs[11].delta, 1u);

  auto back = decode(down);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].type, FrameType::syn_reply);
  EXPECT_TRUE(back[0].fin);
  EXPECT_EQ(find_header(back[0].headers, "x-stream-protocol-version"), "v4.channel.k8s.io");
  EXPECT_EQ(back[1].stream_id, 3u);
  EXPECT_TRUE(back[1].headers.empty());
  EXPECT_EQ(back[2].type, FrameType::headers);
  EXPECT_EQ(back[2].headers, (HeaderList{{"b", "c"}}));
}

TEST(SpdyHeaders, MultipleValuesAndLookups) {
  Codec a, b;
  std::string wire;
  a.syn_stream(wire, 1, 0, 0, {{"accept", std::string("a\0b\0ccc", 7)}, {"empty", ""}}, false);
  auto fs = merged([&] {
    std::vector<Frame> out;
    b.feed(wire, out);
    return out;
  }());
  ASSERT_EQ(fs.size(), 1u);
  auto v = find_header(fs[0].headers, "accept");
  ASSERT_TRUE(v);
  EXPECT_EQ(split_values(*v), (std::vector<std::string_view>{"a", "b", "ccc"}));
  EXPECT_EQ(split_values(*find_header(fs[0].headers, "empty")), (std::vector<std::string_view>{""}));
  EXPECT_FALSE(find_header(fs[0].headers, "Accept"));
  EXPECT_FALSE(find_header(fs[0].headers, "missing"));
}

TEST(SpdyFeeding, ByteByByteAndInChunksGiveTheSameFrames) {
  Codec client;
  std::string wire = conversation(client);
  auto whole = decode(wire);
  ASSERT_EQ(whole.size(), 9u);
  Codec bytewise;
  std::vector<Frame> pieces;
  bool was_mid = false;
  for (char b : wire) {
    bytewise.feed(std::string_view(&b, 1), pieces);
    was_mid |= bytewise.mid_frame();
  }
  EXPECT_TRUE(was_mid);
  EXPECT_FALSE(bytewise.mid_frame());
  // "echo hello\n" came as 11 DATA pieces, fin on none (its FIN is a frame of its own).
  size_t data_pieces = 0;
  for (auto& f : pieces) data_pieces += f.type == FrameType::data && !f.data.empty();
  EXPECT_EQ(data_pieces, 11u);
  expect_same(merged(pieces), merged(whole));
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    Codec chunked;
    std::vector<Frame> out;
    std::string_view rest = wire;
    while (!rest.empty()) {
      size_t n = std::min<size_t>(rest.size(), 1 + rng() % 40);
      chunked.feed(rest.substr(0, n), out);
      rest.remove_prefix(n);
    }
    expect_same(merged(out), merged(whole));
  }
}

TEST(SpdyFeeding, ManyFramesInOneBufferAndAFrameSplitAcrossTwo) {
  std::string wire;
  for (uint32_t i = 1; i <= 100; ++i) Codec::ping(wire, i);
  Codec::data(wire, 1, "abcdef", true);
  auto fs = decode(wire);
  ASSERT_EQ(fs.size(), 101u);
  EXPECT_EQ(fs[99].ping_id, 100u);
  EXPECT_EQ(fs[100].data, "abcdef");
  // The DATA frame split in its payload: two pieces, fin on the second.
  Codec c;
  std::vector<Frame> out;
  std::string d;
  Codec::data(d, 9, "abcdef", true);
  c.feed(d.substr(0, 11), out);
  EXPECT_TRUE(c.mid_frame());
  c.feed(d.substr(11), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data, "abc");
  EXPECT_FALSE(out[0].fin);
  EXPECT_EQ(out[1].data, "def");
  EXPECT_TRUE(out[1].fin);
  EXPECT_EQ(out[1].stream_id, 9u);
}

TEST(SpdyCompression, StateIsCarriedFromBlockToBlock) {
  Codec client;
  HeaderList h = {
      {"streamtype", "stdout"}, {"requestid", "12345"}, {"x-some-longer-header-name", "and-a-longer-value"}};
  std::string f1, f2, f3;
  client.syn_stream(f1, 1, 0, 0, h, false);
  client.syn_stream(f2, 3, 0, 0, h, false);
  client.syn_stream(f3, 5, 0, 0, h, false);
  // The later blocks refer back to the first: much shorter.
  EXPECT_LT(f2.size() + 10, f1.size());
  EXPECT_LT(f3.size() + 10, f1.size());
  auto fs = decode(f1 + f2 + f3);
  ASSERT_EQ(fs.size(), 3u);
  for (auto& f : fs) EXPECT_EQ(f.headers, h);
  // Without the first block, the second cannot be read.
  EXPECT_NE(violation(f2), "");
  // A peer's deflater (zlib defaults, best compression, like Go's) is read the same way.
  PeerDeflate peer;
  std::string wire;
  for (uint32_t id = 1; id <= 7; id += 2)
    wire += control(
        1, 0, syn_stream_payload(id, peer.compress(raw_block({{"streamtype", "stdin"}, {"id", std::to_string(id)}}))));
  auto fs2 = decode(wire);
  ASSERT_EQ(fs2.size(), 4u);
  EXPECT_EQ(find_header(fs2[3].headers, "id"), "7");
}

TEST(SpdyCompression, AZlibBombStopsAtTheLimit) {
  // One header whose value is 64 MiB of 'a': ~64 KiB compressed, inflated only up to the
  // 64 KiB limit.
  PeerDeflate peer;
  std::string block = peer.compress(be32(1) + be32(1) + "a" + be32(64u << 20), Z_NO_FLUSH);
  std::string mib(1 << 20, 'a');
  for (int i = 0; i < 63; ++i) block += peer.compress(mib, Z_NO_FLUSH);
  block += peer.compress(mib, Z_SYNC_FLUSH);
  ASSERT_LT(block.size(), size_t{1} << 20);
  std::string frame = control(1, 0, syn_stream_payload(1, block));
  EXPECT_VIOLATION(frame, "SYN_STREAM header block inflates past the limit of 65536 bytes");
  Limits small;
  small.max_header_block = 100;
  std::string msg =
      violation(control(1, 0, syn_stream_payload(1, stored(raw_block({{"a", std::string(200, 'x')}}), true))), small);
  EXPECT_NE(msg.find("inflates past the limit of 100 bytes"), std::string::npos) << msg;
}

TEST(SpdyLimits, AnOversizeControlFrameIsRefusedFromItsHeader) {
  // 8 bytes announce 2 MiB: refused before any payload is buffered.
  std::string head = be32(0x80030001);
  head += be32(2u << 20);
  EXPECT_VIOLATION(head, "SYN_STREAM frame of 2097152 bytes exceeds the limit of 1048576");
  Limits small;
  small.max_control_frame = 100;
  std::vector<Setting> many(20);
  for (uint32_t i = 0; i < 20; ++i) many[i].id = i + 1;
  std::string s;
  Codec::settings(s, many);
  std::string msg = violation(s, small);
  EXPECT_NE(msg.find("SETTINGS frame of 164 bytes exceeds the limit of 100"), std::string::npos) << msg;
  // Too many headers: the count is refused before anything is allocated for it.
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored(be32(0xffffffff), true))),
                   "header block of 4294967295 headers exceeds the limit of 64");
  std::vector<std::pair<std::string, std::string>> h65;
  for (int i = 0; i < 65; ++i) {
    std::string name(1, 'h');  // (not "h" + ...: g++ 12 warns of a false -Wrestrict)
    name += std::to_string(i);
    h65.emplace_back(name, "v");
  }
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored(raw_block(h65), true))),
                   "header block of 65 headers exceeds the limit of 64");
}

TEST(SpdyLimits, DataIsHandedOutUnbufferedAtAnyLength) {
  // A DATA frame of the largest length (FIN set): its payload comes out as it arrives.
  Codec c;
  std::vector<Frame> out;
  c.feed(be32(1) + be32(0x01ffffff), out);
  EXPECT_TRUE(out.empty());
  c.feed(std::string(1000, 'x'), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data.size(), 1000u);
  EXPECT_FALSE(out[0].fin);
  EXPECT_TRUE(c.mid_frame());
  // The encoder splits what one frame cannot hold.
  std::string wire;
  Codec::data(wire, 1, std::string(kMaxFrameLength + 10, 'y'), true);
  EXPECT_EQ(wire.size(), kMaxFrameLength + 10 + 16);
  auto fs = decode(wire);
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_FALSE(fs[0].fin);
  EXPECT_EQ(fs[0].data.size(), kMaxFrameLength);
  EXPECT_TRUE(fs[1].fin);
  EXPECT_EQ(fs[1].data.size(), 10u);
}

TEST(SpdyLimits, UnknownControlFramesAreSkippedUnbuffered) {
  // CREDENTIAL (10) and an invented type: ignored, as the draft says, between frames.
  std::string wire = control(6, 0, be32(1)) + control(10, 0, std::string(300, 'c')) + control(0x7777, 0xff, "") +
                     control(6, 0, be32(3));
  auto fs = decode(wire);
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs[1].ping_id, 3u);
  // Their version is still checked.
  EXPECT_VIOLATION(control(10, 0, "x", 2), "control frame of version 2");
}

TEST(SpdyRejects, WrongVersion) {
  EXPECT_VIOLATION(control(6, 0, be32(1), 2), "control frame of version 2 (this is SPDY/3)");
  EXPECT_VIOLATION(control(6, 0, be32(1), 0x7fff), "control frame of version 32767");
}

TEST(SpdyRejects, StreamIdZero) {
  EXPECT_VIOLATION(data_frame(0, 0, "x"), "DATA frame on stream 0");
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(0, stored(be32(0), true))), "SYN_STREAM with stream id 0");
  // The reserved bit is not part of the id.
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(0x80000000, stored(be32(0), true))), "SYN_STREAM with stream id 0");
  EXPECT_VIOLATION(control(2, 0, be32(0) + stored(be32(0), true)), "SYN_REPLY with stream id 0");
  EXPECT_VIOLATION(control(8, 0, be32(0) + stored(be32(0), true)), "HEADERS with stream id 0");
  EXPECT_VIOLATION(control(3, 0, be32(0) + be32(5)), "RST_STREAM with stream id 0");
  // Where 0 means something it is accepted: GOAWAY's last good stream, the session's window.
  auto fs = decode(control(7, 0, be32(0) + be32(0)) + control(9, 0, be32(0) + be32(1)));
  ASSERT_EQ(fs.size(), 2u);
}

TEST(SpdyRejects, BadLengths) {
  EXPECT_VIOLATION(control(6, 0, be32(1) + be32(2)), "PING frame of length 8 (it is 4)");
  EXPECT_VIOLATION(control(3, 0, be32(1)), "RST_STREAM frame of length 4 (it is 8)");
  EXPECT_VIOLATION(control(7, 0, be32(1)), "GOAWAY frame of length 4 (it is 8)");
  EXPECT_VIOLATION(control(9, 0, be32(1) + be32(1) + be32(1)), "WINDOW_UPDATE frame of length 12 (it is 8)");
  EXPECT_VIOLATION(control(1, 0, be32(1) + std::string(2, '\0')), "SYN_STREAM frame of length 6 (it is at least 10)");
  EXPECT_VIOLATION(control(2, 0, std::string(2, '\0')), "SYN_REPLY frame of length 2 (it is at least 4)");
  EXPECT_VIOLATION(control(4, 0, be32(1) + "abc"), "SETTINGS frame of length 7 (4 plus 8 per entry)");
  EXPECT_VIOLATION(control(4, 0, be32(2) + be32(1) + be32(1)), "SETTINGS frame of length 12 says it has 2 entries");
  EXPECT_VIOLATION(control(2, 0, be32(1)), "SYN_REPLY without a header block");
}

TEST(SpdyRejects, UndefinedFlagsAndZeroValues) {
  EXPECT_VIOLATION(control(6, 1, be32(1)), "PING frame with undefined flags 0x01");
  EXPECT_VIOLATION(control(7, 1, be32(0) + be32(0)), "GOAWAY frame with undefined flags 0x01");
  EXPECT_VIOLATION(control(2, 2, be32(1) + stored(be32(0), true)), "SYN_REPLY frame with undefined flags 0x02");
  EXPECT_VIOLATION(control(1, 4, syn_stream_payload(1, stored(be32(0), true))),
                   "SYN_STREAM frame with undefined flags 0x04");
  EXPECT_VIOLATION(data_frame(1, 2, "x"), "DATA frame on stream 1 with undefined flags 0x02");
  EXPECT_VIOLATION(control(4, 0, be32(1) + be32(0x04000007) + be32(1)), "SETTINGS entry 7 with undefined flags 0x04");
  EXPECT_VIOLATION(control(3, 0, be32(1) + be32(0)), "RST_STREAM on stream 1 with status 0");
  EXPECT_VIOLATION(control(6, 0, be32(0)), "PING with id 0");
  EXPECT_VIOLATION(control(9, 0, be32(1) + be32(0x80000000)), "WINDOW_UPDATE on stream 1 with delta 0");
}

std::string syn_with(const std::vector<std::pair<std::string, std::string>>& headers, int count = -1) {
  return control(1, 0, syn_stream_payload(1, stored(raw_block(headers, count), true)));
}

TEST(SpdyRejects, InvalidHeaderNamesAndValues) {
  EXPECT_VIOLATION(syn_with({{"StreamType", "x"}}),
                   "SYN_STREAM header name \"StreamType\" is not lower-case printable ASCII");
  EXPECT_VIOLATION(syn_with({{"", "x"}}), "SYN_STREAM header block with an empty header name");
  EXPECT_VIOLATION(syn_with({{"a b", "x"}}), "header name \"a b\" is not lower-case");
  EXPECT_VIOLATION(syn_with({{std::string("a\0b", 3), "x"}}), "header name \"a\\x00b\" is not lower-case");
  EXPECT_VIOLATION(syn_with({{"caf\xc3\xa9", "x"}}), "is not lower-case printable ASCII");
  EXPECT_VIOLATION(syn_with({{"port", "1"}, {"port", "2"}}), "SYN_STREAM header port appears twice");
  EXPECT_VIOLATION(syn_with({{"connection", "close"}}), "SYN_STREAM carries header connection, which SPDY forbids");
  EXPECT_VIOLATION(syn_with({{"host", "x"}}), "SYN_STREAM carries header host");
  EXPECT_VIOLATION(syn_with({{"a", std::string("\0x", 2)}}),
                   "SYN_STREAM header a has an empty value in its NUL-separated list");
  EXPECT_VIOLATION(syn_with({{"a", std::string("x\0", 2)}}), "header a has an empty value");
  EXPECT_VIOLATION(syn_with({{"a", std::string("x\0\0y", 4)}}), "header a has an empty value");
  // host is a request header only: a reply may carry it.
  auto fs = decode(control(2, 0, be32(1) + stored(raw_block({{"host", "x"}}), true)));
  ASSERT_EQ(fs.size(), 1u);
}

TEST(SpdyRejects, TruncatedAndOverlongHeaderBlocks) {
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored("\0\0", true))),
                   "SYN_STREAM header block truncated in the header count");
  EXPECT_VIOLATION(syn_with({{"a", "b"}}, 2), "header block truncated in a name length");
  std::string cut = raw_block({{"abc", "value"}});
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored(cut.substr(0, 10), true))),
                   "header block truncated in a name (3 bytes, 2 left)");
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored(cut.substr(0, 17), true))),
                   "header block truncated in a value (5 bytes, 2 left)");
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored(be32(1) + be32(0xffffffff), true))),
                   "truncated in a name (4294967295 bytes");
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, stored(cut + "xyz", true))),
                   "SYN_STREAM header block has 3 bytes after its last header");
  // A compressed block cut short (no sync flush): what it holds is incomplete.
  PeerDeflate peer;
  std::string block = peer.compress(raw_block({{"streamtype", "stdin"}}));
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, block.substr(0, block.size() - 8))),
                   "SYN_STREAM header block truncated");
}

TEST(SpdyRejects, BadZlibData) {
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, "not zlib at all")),
                   "SYN_STREAM header block is not valid zlib data");
  // A zlib header naming another dictionary (id 00000001).
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, std::string("\x78\xbb\x00\x00\x00\x01\x00", 7))),
                   "compressed with a dictionary other than SPDY/3's");
  // A stream that ends: the next block would have nowhere to go.
  PeerDeflate peer;
  std::string block = peer.compress(raw_block({{"a", "b"}}), Z_FINISH);
  EXPECT_VIOLATION(control(1, 0, syn_stream_payload(1, block)), "header block ends the zlib stream");
}

TEST(SpdyRejects, NothingAfterAViolation) {
  Codec c;
  std::vector<Frame> out;
  std::string wire;
  Codec::ping(wire, 1);
  wire += control(6, 0, be32(0));
  Codec::ping(wire, 3);
  EXPECT_THROW(c.feed(wire, out), Error);
  ASSERT_EQ(out.size(), 1u);  // the frame before the violation
  try {
    c.feed(std::string(wire, 0, 12), out);
    ADD_FAILURE() << "fed after a violation";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EPROTO);
    EXPECT_NE(e.message().find("already failed"), std::string::npos) << e.message();
  }
  // Encoding goes on: the server still answers with a GOAWAY (and could reply).
  std::string reply;
  c.syn_reply(reply, 1, {}, false);
  EXPECT_EQ(decode(reply).size(), 1u);
}

TEST(SpdyEncoder, RefusesBadArgumentsAndKeepsItsStreamInStep) {
  Codec c;
  std::string out;
  EXPECT_NE(bad_argument([&] { c.syn_reply(out, 0, {}, false); }).find("SYN_REPLY stream id 0 is outside"),
            std::string::npos);
  EXPECT_NE(bad_argument([&] { c.syn_reply(out, 0x80000000, {}, false); }).find("is outside 1 to 2^31 - 1"),
            std::string::npos);
  EXPECT_NE(bad_argument([&] {
              c.syn_reply(out, 1, {{"Upper", "x"}}, false);
            }).find("header name \"Upper\""),
            std::string::npos);
  EXPECT_NE(bad_argument([&] { c.syn_reply(out, 1, {{"", "x"}}, false); }).find("header name \"\""), std::string::npos);
  EXPECT_NE(bad_argument([&] {
              c.syn_reply(out, 1, {{"a", "1"}, {"a", "2"}}, false);
            }).find("header a appears twice"),
            std::string::npos);
  EXPECT_NE(bad_argument([&] {
              c.syn_reply(out, 1, {{"transfer-encoding", "chunked"}}, false);
            }).find("not allowed in a SYN_REPLY"),
            std::string::npos);
  EXPECT_NE(bad_argument([&] {
              c.syn_stream(out, 1, 0, 0, {{"host", "x"}}, false);
            }).find("not allowed in a SYN_STREAM"),
            std::string::npos);
  EXPECT_NE(bad_argument([&] {
              c.headers(out, 1, {{"a", std::string("\0", 1)}}, false);
            }).find("empty value"),
            std::string::npos);
  EXPECT_NE(bad_argument([&] { c.syn_stream(out, 1, 0, 8, {}, false); }).find("priority 8"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::ping(out, 0); }).find("PING with id 0"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::rst_stream(out, 1, 0); }).find("status 0"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::rst_stream(out, 0, 1); }).find("RST_STREAM stream id 0"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::data(out, 0, "x", false); }).find("DATA stream id 0"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::window_update(out, 1, 0); }).find("delta 0"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::goaway(out, 0x80000000, 0); }).find("above 2^31 - 1"), std::string::npos);
  EXPECT_NE(bad_argument([&] { Codec::settings(out, {{.id = 0x1000000}}); }).find("above 24 bits"), std::string::npos);
  EXPECT_TRUE(out.empty());
  // The refused frames never touched the zlib stream: what follows decodes.
  c.syn_reply(out, 1, {{"a", "b"}}, false);
  c.syn_reply(out, 3, {{"a", "b"}}, false);
  auto fs = decode(out);
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs[1].headers, (HeaderList{{"a", "b"}}));
}

TEST(SpdyCodec, MovesWithItsZlibStreams) {
  Codec client;
  std::string wire;
  client.syn_stream(wire, 1, 0, 0, {{"streamtype", "stdin"}}, false);
  Codec moved = std::move(client);
  moved.syn_stream(wire, 3, 0, 0, {{"streamtype", "stdout"}}, false);
  Codec server;
  std::vector<Frame> out;
  server.feed(wire.substr(0, 10), out);
  Codec server2(std::move(server));
  server2.feed(wire.substr(10), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(find_header(out[1].headers, "streamtype"), "stdout");
}

TEST(SpdyEncoder, FrameTypeNames) {
  EXPECT_EQ(frame_type_name(FrameType::syn_stream), "SYN_STREAM");
  EXPECT_EQ(frame_type_name(FrameType::window_update), "WINDOW_UPDATE");
  EXPECT_EQ(frame_type_name(FrameType::data), "DATA");
}

} // namespace
} // namespace berth::stream::spdy
