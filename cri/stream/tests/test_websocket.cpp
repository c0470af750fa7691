// Unit tests of the WebSocket codec (cri/stream/websocket.hpp): RFC 6455's own examples,
// partial and fragmented input, every refusal with its close code, the size limit, and the
// Kubernetes channel subprotocols as client-go, Python's client and wsstream use them.
#include <array>
#include <chrono>

#include <gtest/gtest.h>

#include "cri/stream/websocket.hpp"

namespace berth::stream::ws {
namespace {

using Key = std::array<uint8_t, 4>;
constexpr Key kRfcKey = {0x37, 0xfa, 0x21, 0x3d}; // the masking key of RFC 6455's examples

// First byte of a frame: FIN and the opcode.
constexpr uint8_t fin(Opcode op) { return 0x80 | static_cast<uint8_t>(op); }
constexpr uint8_t more(Opcode op) { return static_cast<uint8_t>(op); }

// A client frame: `b0` (FIN, RSV, opcode) as given, the length in its shortest form, the
// payload masked with `key`.
std::string client_frame(uint8_t b0, std::string_view payload, Key key = kRfcKey) {
  std::string f(1, static_cast<char>(b0));
  size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else if (n <= 0xffff) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int s = 56; s >= 0; s -= 8) f += static_cast<char>((uint64_t(n) >> s) & 0xff);
  }
  for (uint8_t k : key) f += static_cast<char>(k);
  for (size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ key[i % 4]);
  return f;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

std::vector<Message> feed_all(std::string_view in, Limits limits = {}) {
  Codec c(limits);
  std::vector<Message> out;
  c.feed(in, out);
  return out;
}

std::vector<Message> feed_bytewise(std::string_view in, Limits limits = {}) {
  Codec c(limits);
  std::vector<Message> out;
  for (char ch : in) c.feed(std::string_view(&ch, 1), out);
  return out;
}

void expect_message(const Message& m, Opcode op, std::string_view payload) {
  EXPECT_EQ(m.opcode, op);
  EXPECT_EQ(m.payload, payload);
}

// `in` is refused with `code` and a message containing `what`, whether fed whole or byte
// by byte.
void expect_violation(std::string_view in, uint16_t code, std::string_view what, Limits limits = {}) {
  for (bool bytewise : {false, true}) {
    SCOPED_TRACE(bytewise ? "byte by byte" : "whole");
    try {
      if (bytewise)
        feed_bytewise(in, limits);
      else
        feed_all(in, limits);
      ADD_FAILURE() << "accepted; expected a violation naming \"" << what << "\"";
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.close_code(), code) << e.what();
      EXPECT_EQ(e.code(), EPROTO);
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
}

TEST(WebSocketAccept, RfcExample) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(accept_key(" dGhlIHNhbXBsZSBub25jZQ==\t"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketAccept, KeyMustBeBase64Of16Bytes) {
  for (std::string_view key : {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZSE=", "not base64 at all!!!!!!!"}) {
    try {
      accept_key(key);
      ADD_FAILURE() << "accepted " << key;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL);
      EXPECT_NE(std::string(e.what()).find("Sec-WebSocket-Key"), std::string::npos) << e.what();
    }
  }
}

// RFC 6455 section 5.7, every example. The server sends the unmasked ones and receives
// masked ones; the unmasked examples fed to a server are refused.
TEST(WebSocketRfcExamples, MaskedTextHello) {
  auto out = feed_all(bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  ASSERT_EQ(out.size(), 1u);
  expect_message(out[0], Opcode::text, "Hello");
}

TEST(WebSocketRfcExamples, UnmaskedTextHelloIsWhatTheServerSendsAndMayNotReceive) {
  std::string rfc = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  std::string ours;
  Codec::encode(ours, Opcode::text, "Hello");
  EXPECT_EQ(ours, rfc);
  expect_violation(rfc, close_code::protocol_error, "unmasked text frame from the client");
}

TEST(WebSocketRfcExamples, FragmentedText) {
  std::string rfc = bytes({0x01, 0x03, 0x48, 0x65, 0x6c}) + bytes({0x80, 0x02, 0x6c, 0x6f});
  expect_violation(rfc, close_code::protocol_error, "unmasked");
  // The same two frames masked, as a client sends them.
  std::string masked = client_frame(0x01, "Hel") + client_frame(0x80, "lo", {1, 2, 3, 4});
  for (const auto& out : {feed_all(masked), feed_bytewise(masked)}) {
    ASSERT_EQ(out.size(), 1u);
    expect_message(out[0], Opcode::text, "Hello");
  }
}

TEST(WebSocketRfcExamples, PingAndMaskedPong) {
  std::string ping;
  Codec::encode(ping, Opcode::ping, "Hello");
  EXPECT_EQ(ping, bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  auto out = feed_all(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  ASSERT_EQ(out.size(), 1u);
  expect_message(out[0], Opcode::pong, "Hello");
}

TEST(WebSocketRfcExamples, Binary256BytesAnd64KiB) {
  for (size_t n : {size_t{256}, size_t{65536}}) {
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 7 + 3);
    std::string ours;
    Codec::encode(ours, Opcode::binary, payload);
    std::string head = n == 256 ? bytes({0x82, 0x7e, 0x01, 0x00}) : bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0});
    EXPECT_EQ(ours.substr(0, head.size()), head);
    EXPECT_EQ(ours.substr(head.size()), payload);
    std::string in = client_frame(fin(Opcode::binary), payload);
    EXPECT_EQ(in.substr(0, 2), head.substr(0, 1) + static_cast<char>(0x80 | uint8_t(head[1])));
    for (const auto& out : {feed_all(in), feed_bytewise(in)}) {
      ASSERT_EQ(out.size(), 1u);
      expect_message(out[0], Opcode::binary, payload);
    }
  }
}

TEST(WebSocketCodec, EncodesLengthsInTheirShortestForm) {
  for (auto [n, head] :
       std::initializer_list<std::pair<size_t, std::string>>{{0, bytes({0x82, 0})},
                                                             {125, bytes({0x82, 125})},
                                                             {126, bytes({0x82, 126, 0, 126})},
                                                             {65535, bytes({0x82, 126, 0xff, 0xff})},
                                                             {65536, bytes({0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0})}}) {
    std::string out;
    Codec::encode(out, Opcode::binary, std::string(n, 'x'));
    EXPECT_EQ(out.size(), head.size() + n);
    EXPECT_EQ(out.substr(0, head.size()), head) << n;
  }
}

TEST(WebSocketCodec, ServerFramesTheCodecCannotEncodeAreRefused) {
  std::string out;
  EXPECT_THROW(Codec::encode(out, Opcode::ping, std::string(126, 'x')), Error);
  EXPECT_THROW(Codec::encode(out, Opcode::continuation, "x"), Error);
  EXPECT_TRUE(out.empty());
  Codec::encode(out, Opcode::pong, std::string(125, 'x'));
  EXPECT_EQ(out.size(), 127u);
}

TEST(WebSocketCodec, ManyFramesAtOnceOrByteByByteGiveTheSameMessages) {
  std::string in = client_frame(fin(Opcode::binary), "\x01out") + client_frame(fin(Opcode::ping), "") +
                   client_frame(fin(Opcode::text), "") + client_frame(fin(Opcode::binary), std::string(300, 'b')) +
                   client_frame(fin(Opcode::close), bytes({0x03, 0xe8}) + "bye");
  auto whole = feed_all(in);
  ASSERT_EQ(whole.size(), 5u);
  expect_message(whole[0], Opcode::binary, "\x01out");
  expect_message(whole[1], Opcode::ping, "");
  expect_message(whole[2], Opcode::text, "");
  expect_message(whole[3], Opcode::binary, std::string(300, 'b'));
  EXPECT_EQ(whole[4].opcode, Opcode::close);
  auto bytewise = feed_bytewise(in);
  ASSERT_EQ(bytewise.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) expect_message(bytewise[i], whole[i].opcode, whole[i].payload);
  // Uneven chunks that split headers, masking keys and payloads alike.
  Codec c;
  std::vector<Message> out;
  for (size_t at = 0, step = 1; at < in.size(); at += step, step = step % 7 + 2)
    c.feed(std::string_view(in).substr(at, step), out);
  ASSERT_EQ(out.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) expect_message(out[i], whole[i].opcode, whole[i].payload);
}

TEST(WebSocketCodec, ControlFramesBetweenFragmentsAreDeliveredAtOnce) {
  Codec c;
  std::vector<Message> out;
  c.feed(client_frame(more(Opcode::text), "Hel"), out);
  EXPECT_TRUE(out.empty());
  c.feed(client_frame(fin(Opcode::ping), "x"), out);
  ASSERT_EQ(out.size(), 1u);
  expect_message(out[0], Opcode::ping, "x");
  c.feed(client_frame(more(Opcode::continuation), ""), out);
  c.feed(client_frame(fin(Opcode::pong), ""), out);
  c.feed(client_frame(fin(Opcode::continuation), "lo"), out);
  ASSERT_EQ(out.size(), 3u);
  expect_message(out[1], Opcode::pong, "");
  expect_message(out[2], Opcode::text, "Hello");
  // The next message starts clean.
  c.feed(client_frame(fin(Opcode::binary), "z"), out);
  ASSERT_EQ(out.size(), 4u);
  expect_message(out[3], Opcode::binary, "z");
}

TEST(WebSocketCodec, Utf8SplitAcrossFragmentsIsValid) {
  // "é€😀" with every character cut between two frames.
  std::string text = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  std::string in = client_frame(more(Opcode::text), text.substr(0, 1)) +
                   client_frame(more(Opcode::continuation), text.substr(1, 3)) +
                   client_frame(more(Opcode::continuation), text.substr(4, 3)) +
                   client_frame(fin(Opcode::continuation), text.substr(7));
  auto out = feed_all(in);
  ASSERT_EQ(out.size(), 1u);
  expect_message(out[0], Opcode::text, text);
}

TEST(WebSocketCodec, ByteByByteFeedingOfAMebibyteStaysLinear) {
  std::string payload(Limits{}.max_message, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i >> 3);
  std::string in;
  for (size_t at = 0; at < payload.size(); at += 4096)
    in += client_frame(at == 0                       ? more(Opcode::binary)
                       : at + 4096 >= payload.size() ? fin(Opcode::continuation)
                                                     : more(Opcode::continuation),
                       std::string_view(payload).substr(at, 4096), {uint8_t(at), 0x5a, 0xa5, 0xff});
  auto start = std::chrono::steady_clock::now();
  auto out = feed_bytewise(in);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].payload == payload);
  // Quadratic copying would take hours here; linear takes milliseconds.
  EXPECT_LT(seconds, 5.0);
}

TEST(WebSocketCodec, RejectsUnmaskedFrames) {
  expect_violation(bytes({0x82, 0x01, 0x00}), close_code::protocol_error, "unmasked binary frame");
  expect_violation(bytes({0x89, 0x00}), close_code::protocol_error, "unmasked ping frame");
}

TEST(WebSocketCodec, RejectsRsvBits) {
  for (uint8_t rsv : {0x40, 0x20, 0x10})
    expect_violation(client_frame(0x81 | rsv, "x"), close_code::protocol_error, "RSV bits");
}

TEST(WebSocketCodec, RejectsReservedOpcodes) {
  for (uint8_t op : {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf})
    expect_violation(client_frame(0x80 | op, ""), close_code::protocol_error,
                     fmt::format("reserved opcode 0x{:x}", op));
}

TEST(WebSocketCodec, RejectsLongControlFrames) {
  expect_violation(client_frame(fin(Opcode::ping), std::string(126, 'p')), close_code::protocol_error,
                   "ping frame longer than 125 bytes");
  // 125 is the most.
  auto out = feed_all(client_frame(fin(Opcode::ping), std::string(125, 'p')));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload.size(), 125u);
}

TEST(WebSocketCodec, RejectsFragmentedControlFrames) {
  expect_violation(client_frame(more(Opcode::ping), "x"), close_code::protocol_error, "fragmented ping frame");
  expect_violation(client_frame(more(Opcode::close), ""), close_code::protocol_error, "fragmented close frame");
}

TEST(WebSocketCodec, RejectsContinuationWithoutAMessage) {
  expect_violation(client_frame(fin(Opcode::continuation), "x"), close_code::protocol_error,
                   "continuation frame without a message to continue");
  // A finished message leaves nothing to continue.
  expect_violation(client_frame(fin(Opcode::text), "a") + client_frame(fin(Opcode::continuation), "b"),
                   close_code::protocol_error, "continuation frame without");
}

TEST(WebSocketCodec, RejectsANewMessageInsideAFragmentedOne) {
  expect_violation(client_frame(more(Opcode::text), "a") + client_frame(fin(Opcode::binary), "b"),
                   close_code::protocol_error, "binary frame while a fragmented text message is still open");
}

TEST(WebSocketCodec, RejectsA64BitLengthWithItsTopBitSet) {
  std::string in = bytes({0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1}) + std::string(4, '\0');
  expect_violation(in, close_code::protocol_error, "most significant bit");
}

TEST(WebSocketCodec, RejectsTextThatIsNotUtf8) {
  expect_violation(client_frame(fin(Opcode::text), "ok\xff"), close_code::invalid_payload,
                   "text message is not UTF-8 (byte 2 of 3)");
  // Surrogates and overlong forms are not UTF-8 either; binary messages may hold anything.
  expect_violation(client_frame(fin(Opcode::text), "\xed\xa0\x80"), close_code::invalid_payload, "not UTF-8");
  expect_violation(client_frame(fin(Opcode::text), "\xc0\xaf"), close_code::invalid_payload, "not UTF-8");
  // A character cut short by the message's end.
  expect_violation(client_frame(more(Opcode::text), "\xe2\x82") + client_frame(fin(Opcode::continuation), ""),
                   close_code::invalid_payload, "not UTF-8");
  EXPECT_EQ(feed_all(client_frame(fin(Opcode::binary), "\xff\xfe")).size(), 1u);
}

TEST(WebSocketCodec, ChecksClosePayloads) {
  auto empty = feed_all(client_frame(fin(Opcode::close), ""));
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(close_status(empty[0]).code, close_code::no_status);
  auto normal = feed_all(client_frame(fin(Opcode::close), bytes({0x03, 0xe8}) + "done \xc3\xa9"));
  ASSERT_EQ(normal.size(), 1u);
  EXPECT_EQ(close_status(normal[0]).code, 1000);
  EXPECT_EQ(close_status(normal[0]).reason, "done \xc3\xa9");
  for (int code : {1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4999})
    EXPECT_EQ(feed_all(client_frame(fin(Opcode::close), bytes({code >> 8, code & 0xff}))).size(), 1u) << code;

  expect_violation(client_frame(fin(Opcode::close), "\x03"), close_code::protocol_error,
                   "close frame with a 1-byte payload");
  for (int code : {0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000, 65535})
    expect_violation(client_frame(fin(Opcode::close), bytes({code >> 8, code & 0xff})), close_code::protocol_error,
                     fmt::format("close frame with status code {}", code));
  expect_violation(client_frame(fin(Opcode::close), bytes({0x03, 0xe8, 0xff})), close_code::invalid_payload,
                   "close reason is not UTF-8");
}

TEST(WebSocketCodec, NothingMayFollowTheCloseFrame) {
  Codec c;
  std::vector<Message> out;
  c.feed(client_frame(fin(Opcode::close), bytes({0x03, 0xe8})), out);
  EXPECT_TRUE(c.closed());
  c.feed("", out);
  try {
    c.feed(client_frame(fin(Opcode::binary), "late"), out);
    ADD_FAILURE() << "data after close accepted";
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.close_code(), close_code::protocol_error);
    EXPECT_NE(std::string(e.what()).find("data after the close frame"), std::string::npos) << e.what();
  }
  // The close message itself was delivered, also when the late data came in the same read.
  ASSERT_EQ(out.size(), 1u);
  std::vector<Message> same_read;
  Codec d;
  EXPECT_THROW(d.feed(client_frame(fin(Opcode::close), "") + "x", same_read), ProtocolError);
  ASSERT_EQ(same_read.size(), 1u);
  EXPECT_EQ(same_read[0].opcode, Opcode::close);
}

TEST(WebSocketCodec, MessagesBeforeAViolationStayAndTheCodecStaysFailed) {
  Codec c;
  std::vector<Message> out;
  EXPECT_THROW(c.feed(client_frame(fin(Opcode::binary), "ok") + bytes({0x82, 0x00}), out), ProtocolError);
  ASSERT_EQ(out.size(), 1u);
  expect_message(out[0], Opcode::binary, "ok");
  EXPECT_THROW(c.feed(client_frame(fin(Opcode::binary), "again"), out), ProtocolError);
  EXPECT_EQ(out.size(), 1u);
}

TEST(WebSocketCodec, MaxMessageIsEnforcedBeforeBuffering) {
  Limits small{.max_message = 10};
  EXPECT_EQ(feed_all(client_frame(fin(Opcode::binary), std::string(10, 'x')), small).size(), 1u);
  // Refused on the header alone: the payload is never read.
  std::string head = client_frame(fin(Opcode::binary), std::string(11, 'x')).substr(0, 6);
  expect_violation(head, close_code::too_big, "message of more than 10 bytes", small);
  // Across fragments: 6 + 4 fits, 6 + 4 + 1 does not, whatever the interleaved pings.
  std::string frags = client_frame(more(Opcode::text), "abcdef") + client_frame(fin(Opcode::ping), "ping") +
                      client_frame(more(Opcode::continuation), "ghij");
  Codec c(small);
  std::vector<Message> out;
  c.feed(frags, out);
  EXPECT_EQ(out.size(), 1u);
  try {
    c.feed(client_frame(fin(Opcode::continuation), "k").substr(0, 6), out);
    ADD_FAILURE() << "11 bytes accepted";
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.close_code(), close_code::too_big);
    EXPECT_NE(std::string(e.what()).find("(10 buffered, a frame of 1 more)"), std::string::npos) << e.what();
  }
  // A 64-bit length near 2^63 is refused as too big, with no allocation.
  expect_violation(bytes({0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}), close_code::too_big,
                   "message of more than");
}

TEST(WebSocketCodec, CloseFramesTheServerSends) {
  std::string out;
  Codec::close(out, 1000, "bye");
  EXPECT_EQ(out, bytes({0x88, 0x05, 0x03, 0xe8}) + "bye");
  // A long reason is cut to fit 125 bytes, between characters; bytes that are not UTF-8 end it.
  std::string reason;
  for (int i = 0; i < 100; ++i) reason += "\xc3\xa9";
  out.clear();
  Codec::close(out, close_code::internal_error, reason);
  ASSERT_EQ(static_cast<uint8_t>(out[1]), 2 + 122);
  auto back = feed_all(client_frame(fin(Opcode::close), out.substr(2)));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(close_status(back[0]).code, close_code::internal_error);
  EXPECT_EQ(close_status(back[0]).reason, reason.substr(0, 122));
  out.clear();
  Codec::close(out, close_code::invalid_payload, "bad \xff tail");
  EXPECT_EQ(out.substr(4), "bad ");
  for (uint16_t code : {0, 1005, 1006, 1014, 1015, 2000, 5000}) EXPECT_THROW(Codec::close(out, code), Error) << code;
}

TEST(WebSocketChannels, ProtocolNames) {
  for (Protocol p : {Protocol::channel, Protocol::v4_channel, Protocol::v5_channel, Protocol::base64_channel,
                     Protocol::v4_base64_channel})
    EXPECT_EQ(protocol_from_name(protocol_name(p)), p);
  EXPECT_EQ(protocol_from_name(""), Protocol::channel);
  EXPECT_EQ(protocol_from_name("v5.base64.channel.k8s.io"), std::nullopt);
  EXPECT_EQ(protocol_from_name("V4.channel.k8s.io"), std::nullopt);
  EXPECT_TRUE(is_base64(Protocol::v4_base64_channel));
  EXPECT_FALSE(is_base64(Protocol::v5_channel));
  EXPECT_TRUE(has_close_signal(Protocol::v5_channel));
  EXPECT_FALSE(has_close_signal(Protocol::v4_channel));
}

TEST(WebSocketChannels, BinaryFamily) {
  for (Protocol p : {Protocol::channel, Protocol::v4_channel, Protocol::v5_channel}) {
    std::string out;
    encode_channel(out, p, 1, "foo\n");
    EXPECT_EQ(out, bytes({0x82, 0x05, 0x01}) + "foo\n");
    // wsstream's example: "foo\n" on stdin, from the client.
    auto in = feed_all(client_frame(fin(Opcode::binary), bytes({0, 102, 111, 111, 10})));
    ASSERT_EQ(in.size(), 1u);
    ChannelData d = decode_channel(p, in[0]);
    EXPECT_EQ(d.channel, 0);
    EXPECT_EQ(d.data, "foo\n");
    EXPECT_FALSE(d.close);
    // Python's client sends a str as a text frame chr(channel) + str.
    d = decode_channel(p, Message{Opcode::text, std::string("\x04{\"Width\":80,\"Height\":24}")});
    EXPECT_EQ(d.channel, 4);
    EXPECT_EQ(d.data, "{\"Width\":80,\"Height\":24}");
  }
}

TEST(WebSocketChannels, Base64Family) {
  for (Protocol p : {Protocol::base64_channel, Protocol::v4_base64_channel}) {
    std::string out;
    encode_channel(out, p, 1, "\n");
    EXPECT_EQ(out, bytes({0x81, 0x05}) + "1Cg==");
    ChannelData d = decode_channel(p, Message{Opcode::text, "0Zm9vCg=="});
    EXPECT_EQ(d.channel, 0);
    EXPECT_EQ(d.data, "foo\n");
    // Go's decoder skips line breaks; so does this one.
    EXPECT_EQ(decode_channel(p, Message{Opcode::text, "0Zm9v\r\nCg=="}).data, "foo\n");
    // Binary frames are read alike (wsstream does not look at the opcode); "4" is channel 4, no data.
    d = decode_channel(p, Message{Opcode::binary, "4"});
    EXPECT_EQ(d.channel, 4);
    EXPECT_EQ(d.data, "");
    // Channels past 9 follow the ASCII table, as Go's '0'+n does (port forward's 5th port).
    out.clear();
    encode_channel(out, p, 10, "");
    EXPECT_EQ(out, bytes({0x81, 0x01}) + ":");
    EXPECT_EQ(decode_channel(p, Message{Opcode::text, ":"}).channel, 10);
    EXPECT_THROW(encode_channel(out, p, 80, "x"), Error);
  }
}

TEST(WebSocketChannels, DecodeErrors) {
  auto expect_refused = [](Protocol p, Message m, uint16_t code, std::string_view what) {
    try {
      decode_channel(p, m);
      ADD_FAILURE() << "accepted; expected \"" << what << "\"";
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.close_code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_refused(Protocol::v4_channel, Message{Opcode::binary, ""}, close_code::protocol_error,
                 "empty v4.channel.k8s.io message");
  expect_refused(Protocol::base64_channel, Message{Opcode::text, ""}, close_code::protocol_error, "empty");
  expect_refused(Protocol::v5_channel, Message{Opcode::ping, "\x01x"}, close_code::unsupported_data, "ping message");
  expect_refused(Protocol::v5_channel, Message{Opcode::close, ""}, close_code::unsupported_data, "close message");
  expect_refused(Protocol::v4_base64_channel, Message{Opcode::text, "1Zm9v!"}, close_code::invalid_payload,
                 "not base64");
  expect_refused(Protocol::v4_base64_channel, Message{Opcode::text, "1Zm9"}, close_code::invalid_payload, "not base64");
  expect_refused(Protocol::v4_base64_channel, Message{Opcode::text, "/Zm9v"}, close_code::invalid_payload,
                 "channel character 0x2f");
  expect_refused(Protocol::v4_base64_channel, Message{Opcode::binary, "\xff"}, close_code::invalid_payload,
                 "channel character 0xff");
}

TEST(WebSocketChannels, V5CloseSignal) {
  // client-go's stream.Close() on stdin: [255, 0].
  auto in = feed_all(client_frame(fin(Opcode::binary), bytes({255, 0})));
  ASSERT_EQ(in.size(), 1u);
  ChannelData d = decode_channel(Protocol::v5_channel, in[0]);
  EXPECT_TRUE(d.close);
  EXPECT_EQ(d.channel, 0);
  EXPECT_EQ(d.data, "");
  std::string out;
  encode_close_signal(out, Protocol::v5_channel, 1);
  EXPECT_EQ(out, bytes({0x82, 0x02, 255, 1}));
  EXPECT_THROW(encode_close_signal(out, Protocol::v4_channel, 1), Error);
  // wsstream ends the connection on a close signal without exactly one channel byte.
  for (std::string bad : {bytes({255}), bytes({255, 0, 0})}) {
    try {
      decode_channel(Protocol::v5_channel, Message{Opcode::binary, bad});
      ADD_FAILURE() << "accepted a close signal of " << bad.size() << " bytes";
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.close_code(), close_code::protocol_error);
      EXPECT_NE(std::string(e.what()).find("close signal"), std::string::npos) << e.what();
    }
  }
  // Before v5, 255 is just a channel (wsstream drops it as unknown).
  d = decode_channel(Protocol::v4_channel, Message{Opcode::binary, bytes({255, 0})});
  EXPECT_FALSE(d.close);
  EXPECT_EQ(d.channel, 255);
  EXPECT_EQ(d.data, std::string(1, '\0'));
}

TEST(WebSocketChannels, TheServersFirstMessages) {
  // Exec with stdout: one empty message on channel 1.
  std::string out;
  encode_channel(out, Protocol::v5_channel, 1, "");
  EXPECT_EQ(out, bytes({0x82, 0x01, 0x01}));
  out.clear();
  encode_channel(out, Protocol::base64_channel, 1, "");
  EXPECT_EQ(out, bytes({0x81, 0x01}) + "1");
  // Port forward, second port (8080): its port, little endian, on data channel 2 and error channel 3.
  out.clear();
  encode_channel(out, Protocol::v4_channel, 2, bytes({0x90, 0x1f}));
  encode_channel(out, Protocol::v4_channel, 3, bytes({0x90, 0x1f}));
  EXPECT_EQ(out, bytes({0x82, 0x03, 2, 0x90, 0x1f, 0x82, 0x03, 3, 0x90, 0x1f}));
}

TEST(WebSocketNegotiation, ServerPreferenceWins) {
  using V = std::vector<std::string_view>;
  // Python's client: v5 then v4.
  EXPECT_EQ(negotiate(V{"v5.channel.k8s.io,v4.channel.k8s.io"}, kExecProtocols), "v5.channel.k8s.io");
  // The client's order does not matter, the server's does.
  EXPECT_EQ(negotiate(V{"channel.k8s.io, v4.channel.k8s.io"}, kExecProtocols), "v4.channel.k8s.io");
  EXPECT_EQ(negotiate(V{"base64.channel.k8s.io", "v4.base64.channel.k8s.io"}, kExecProtocols),
            "v4.base64.channel.k8s.io");
  // client-go's executor: v5 alone. Port forward has no v5.
  EXPECT_EQ(negotiate(V{"v5.channel.k8s.io"}, kExecProtocols), "v5.channel.k8s.io");
  EXPECT_EQ(negotiate(V{"v5.channel.k8s.io"}, kPortForwardProtocols), std::nullopt);
  EXPECT_EQ(negotiate(V{"v5.channel.k8s.io", "v4.channel.k8s.io"}, kPortForwardProtocols), "v4.channel.k8s.io");
}

TEST(WebSocketNegotiation, HeaderSyntax) {
  using V = std::vector<std::string_view>;
  // Several header lines, blanks, empty elements and unknown names (a browser's token).
  EXPECT_EQ(negotiate(V{" ,base64url.bearer.authorization.k8s.io.dG9rZW4", "\tchannel.k8s.io\t, ,"}, kExecProtocols),
            "channel.k8s.io");
  // Names are compared exactly.
  EXPECT_EQ(negotiate(V{"V5.CHANNEL.K8S.IO"}, kExecProtocols), std::nullopt);
  EXPECT_EQ(negotiate(V{"v5.channel.k8s.io.extra"}, kExecProtocols), std::nullopt);
  // No protocol offered: "" if the server takes such clients (they get channel.k8s.io).
  EXPECT_EQ(negotiate(V{}, kExecProtocols), "");
  EXPECT_EQ(negotiate(V{" , "}, kExecProtocols), "");
  constexpr std::string_view strict[] = {"v5.channel.k8s.io"};
  EXPECT_EQ(negotiate(V{}, strict), std::nullopt);
  // Offered but unknown: refused, even though "" is listed (as wsstream does).
  EXPECT_EQ(negotiate(V{"chat"}, kExecProtocols), std::nullopt);
}

} // namespace
} // namespace berth::stream::ws
