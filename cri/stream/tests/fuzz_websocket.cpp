// Bounded fuzzing of the WebSocket codec (tests/lib/fuzz.hpp): a client's bytes are hostile.
// Each input goes to a fresh Codec twice, whole and in random chunks; both must end alike
// (same messages, same violation), within the limits, refusing only with berth::Error.
// Every message delivered then goes through the channel decoders.
#include <array>
#include <functional>
#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

#include "common/json.hpp"
#include "cri/stream/websocket.hpp"
#include "tests/lib/fuzz.hpp"

namespace berth::stream::ws {
namespace {

using namespace std::string_literals;

constexpr Limits kLimits{.max_message = 4096};

std::string client_frame(uint8_t b0, std::string_view payload, std::array<uint8_t, 4> key) {
  std::string f(1, static_cast<char>(b0));
  size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  }
  for (uint8_t k : key) f += static_cast<char>(k);
  for (size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ key[i % 4]);
  return f;
}

// Valid client sessions. Half use the all-zero masking key, so that mutated payload bytes
// stay what they read as (a mutation of "{" is a mutation of JSON, not of noise).
std::vector<std::string> seeds() {
  std::vector<std::string> out;
  using Key = std::array<uint8_t, 4>;
  for (Key key : {Key{0, 0, 0, 0}, Key{0x37, 0xfa, 0x21, 0x3d}}) {
    out.push_back(client_frame(0x81, "Hello", key));
    out.push_back(client_frame(0x82, "\0foo\n"s, key) + client_frame(0x82, "\x04{\"Width\":80,\"Height\":24}", key) +
                  client_frame(0x82, "\xff\x00"s, key) + client_frame(0x88, "\x03\xe8" + "bye"s, key));
    out.push_back(client_frame(0x01, "Hel", key) + client_frame(0x89, "ping", key) + client_frame(0x00, "l", key) +
                  client_frame(0x8a, "", key) + client_frame(0x80, "o", key));
    out.push_back(client_frame(0x81, "0Zm9vCg==", key) + client_frame(0x81, "4eyJXaWR0aCI6ODAsIkhlaWdodCI6MjR9", key));
    out.push_back(client_frame(0x01, "\xc3", key) + client_frame(0x00, "\xa9\xe2\x82", key) +
                  client_frame(0x80, "\xac", key));
    out.push_back(client_frame(0x82, std::string(300, 'x'), key) + client_frame(0x89, "", key) +
                  client_frame(0x88, "", key));
  }
  return out;
}

const std::vector<std::string> kTokens = {
    "\x81", "\x82", "\x01", "\x02", "\x00"s, "\x80", "\x88", "\x89", "\x8a", "\xc1", "\x83", "\x8f", "\x85",
    "\xfe", "\xff", "\x7e", "\x7f", "\xfe\x10\x00"s, "\xff\x00\x00\x00\x00\x00\x00\x10\x00"s, "\xff\x80",
    "\x00\x00\x00\x00"s, "\x37\xfa\x21\x3d", "\x03\xe8", "\x03\xed", "\x0b\xb8", "\xc3\xa9", "\xed\xa0\x80",
    "\xf4\x90\x80\x80", "=", "\r\n", "\xff\x00"s,
};

struct Outcome {
  std::vector<Message> messages;
  std::optional<uint16_t> close_code;
  std::string error;
};

bool same(const Outcome& a, const Outcome& b) {
  if (a.close_code != b.close_code || a.error != b.error || a.messages.size() != b.messages.size()) return false;
  for (size_t i = 0; i < a.messages.size(); ++i)
    if (a.messages[i].opcode != b.messages[i].opcode || a.messages[i].payload != b.messages[i].payload) return false;
  return true;
}

template <typename Feed>
Outcome run_codec(Feed feed) {
  Outcome o;
  Codec c(kLimits);
  try {
    feed(c, o.messages);
  } catch (const ProtocolError& e) {
    o.close_code = e.close_code();
    o.error = e.what();
  }
  return o;
}

void target(const std::string& input) {
  Outcome whole = run_codec([&](Codec& c, std::vector<Message>& out) { c.feed(input, out); });
  // Chunk sizes drawn from the input itself, so BERTH_FUZZ_SEED replays them.
  std::mt19937_64 rng(std::hash<std::string>{}(input));
  Outcome chunked = run_codec([&](Codec& c, std::vector<Message>& out) {
    for (size_t at = 0; at < input.size();) {
      size_t n = 1 + std::uniform_int_distribution<size_t>(0, rng() % 2 ? 3 : 300)(rng);
      c.feed(std::string_view(input).substr(at, n), out);
      at += n;
    }
  });
  if (!same(whole, chunked))
    throw std::logic_error("chunking changed the outcome: \"" + whole.error + "\" vs \"" + chunked.error + "\"");
  if (whole.close_code && whole.error.empty()) throw std::logic_error("violation without a message");

  for (const Message& m : whole.messages) {
    switch (m.opcode) {
    case Opcode::text:
      if (first_invalid_utf8(m.payload)) throw std::logic_error("text message that is not UTF-8 delivered");
      [[fallthrough]];
    case Opcode::binary:
      if (m.payload.size() > kLimits.max_message) throw std::logic_error("message over the limit delivered");
      for (Protocol p : {Protocol::channel, Protocol::v5_channel, Protocol::v4_base64_channel}) {
        try {
          ChannelData d = decode_channel(p, m);
          // What decodes encodes back to a frame the codec reads.
          std::string frame;
          if (d.close) encode_close_signal(frame, p, d.channel);
          else if (!is_base64(p) || d.channel <= 79) encode_channel(frame, p, d.channel, d.data);
        } catch (const ProtocolError&) {
        }
      }
      break;
    case Opcode::close: {
      CloseStatus s = close_status(m);
      std::string reply;
      // Echoing the code must not throw: the codec checked it.
      if (s.code != close_code::no_status) Codec::close(reply, s.code, s.reason);
      break;
    }
    case Opcode::ping:
    case Opcode::pong: {
      if (m.payload.size() > 125) throw std::logic_error("control frame over 125 bytes delivered");
      std::string pong;
      Codec::encode(pong, Opcode::pong, m.payload);
      break;
    }
    default: throw std::logic_error("continuation delivered as a message");
    }
  }
}

TEST(WebSocketFuzz, ClientBytesAreParsedOrRefusedAlikeInAnyChunking) {
  size_t runs = fuzz::run(seeds(), kTokens, [](const std::string& input) {
    target(input);
    // The same bytes as a Sec-WebSocket-Key and as Sec-WebSocket-Protocol lines.
    try {
      (void)accept_key(input);
    } catch (const Error&) {
    }
    std::vector<std::string_view> lines;
    for (size_t at = 0; at <= input.size();) {
      size_t nl = input.find('\n', at);
      lines.push_back(std::string_view(input).substr(at, nl == std::string::npos ? std::string::npos : nl - at));
      if (nl == std::string::npos) break;
      at = nl + 1;
    }
    auto chosen = negotiate(lines, kExecProtocols);
    if (chosen && !protocol_from_name(*chosen)) throw std::logic_error("negotiated a name outside the server's list");
  });
  EXPECT_GT(runs, 300u);
}

} // namespace
} // namespace berth::stream::ws
