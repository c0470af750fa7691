// RFC 6455 framing, server side, and the Kubernetes channel subprotocols (websocket.hpp).
#include "cri/stream/websocket.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/base64.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::stream::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxControl = 125;

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_control(Opcode op) { return (static_cast<uint8_t>(op) & 0x8) != 0; }

bool known_opcode(uint8_t op) { return op <= 2 || (op >= 8 && op <= 10); }

// Codes allowed in a close frame, both ways: those RFC 6455 defines for the wire, 1012 and
// 1013 that IANA registered since, and 3000-4999 for libraries and applications. The set
// gorilla/websocket (client-go's library) accepts; it refuses IANA's 1014 (bad gateway,
// a gateway's code), so that one is out here too.
bool valid_close_code(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013);
}

const char* opcode_name(uint8_t op) {
  switch (op) {
  case 0: return "continuation";
  case 1: return "text";
  case 2: return "binary";
  case 8: return "close";
  case 9: return "ping";
  case 10: return "pong";
  default: return "reserved";
  }
}

// XORs n payload bytes with the frame's masking key, `phase` being the offset of p[0] in
// the frame's payload modulo 4. Eight bytes at a time: 1 MiB messages are the normal case.
void unmask(char* p, size_t n, const uint8_t key[4], size_t& phase) {
  uint8_t rot[8];
  for (size_t k = 0; k < 8; ++k) rot[k] = key[(phase + k) & 3];
  uint64_t m;
  std::memcpy(&m, rot, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ rot[i & 7]);
  phase = (phase + n) & 3;
}

void put_header(std::string& out, Opcode op, size_t len) {
  out += static_cast<char>(0x80 | static_cast<uint8_t>(op));
  if (len < 126) {
    out += static_cast<char>(len);
  } else if (len <= 0xffff) {
    out += static_cast<char>(126);
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(len & 0xff);
  } else {
    out += static_cast<char>(127);
    for (int s = 56; s >= 0; s -= 8) out += static_cast<char>((static_cast<uint64_t>(len) >> s) & 0xff);
  }
}

// The longest prefix of s that is UTF-8 and at most `max` bytes, cut between characters.
std::string_view utf8_prefix(std::string_view s, size_t max) {
  if (auto bad = first_invalid_utf8(s)) s = s.substr(0, *bad);
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return s.substr(0, cut);
}

} // namespace

std::string accept_key(std::string_view sec_websocket_key) {
  std::string_view key = trim_ows(sec_websocket_key);
  auto nonce = base64_decode(key);
  if (!nonce || nonce->size() != 16)
    fail_code(EINVAL, "websocket: Sec-WebSocket-Key {} is not base64 of 16 bytes", quoted_value(key, 64));
  std::string input = std::string(key) + std::string(kGuid);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(input.data(), input.size(), md, &n, EVP_sha1(), nullptr) != 1)
    fail("websocket: SHA-1 of the Sec-WebSocket-Key failed");
  return base64_encode(std::string_view(reinterpret_cast<const char*>(md), n));
}

CloseStatus close_status(const Message& close) {
  if (close.opcode != Opcode::close)
    fail_code(EINVAL, "websocket: close_status of a {} message", opcode_name(uint8_t(close.opcode)));
  if (close.payload.size() < 2) return {close_code::no_status, {}};
  uint16_t code = static_cast<uint16_t>((uint8_t(close.payload[0]) << 8) | uint8_t(close.payload[1]));
  return {code, std::string_view(close.payload).substr(2)};
}

Codec::Codec(Limits limits) : limits_(limits) {}

void Codec::violation(uint16_t code, std::string msg) {
  failed_ = true;
  throw ProtocolError(code, "websocket: " + msg);
}

// The full header's length, known from its first two bytes (every client frame carries
// a 4-byte masking key; check_first_bytes has refused those without).
size_t Codec::header_size() const {
  if (head_len_ < 2) return 2;
  uint8_t len7 = head_[1] & 0x7f;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
}

// Everything the first two bytes decide, checked before the rest of the header is read.
void Codec::check_first_bytes() {
  uint8_t b0 = head_[0], b1 = head_[1];
  uint8_t op = b0 & 0x0f;
  bool fin = b0 & 0x80;
  uint8_t len7 = b1 & 0x7f;
  constexpr uint16_t kError = close_code::protocol_error;
  if (b0 & 0x70) violation(kError, fmt::format("RSV bits 0x{:x} set, and no extension was negotiated", b0 & 0x70));
  if (!known_opcode(op)) violation(kError, fmt::format("reserved opcode 0x{:x}", op));
  if (!(b1 & 0x80)) violation(kError, fmt::format("unmasked {} frame from the client", opcode_name(op)));
  if (op & 0x8) {
    if (!fin)
      violation(kError, fmt::format("fragmented {} frame (control frames are not fragmented)", opcode_name(op)));
    if (len7 > kMaxControl)
      violation(kError, fmt::format("{} frame longer than {} bytes", opcode_name(op), kMaxControl));
  } else if (op == 0) {
    if (!message_open_) violation(kError, "continuation frame without a message to continue");
  } else if (message_open_) {
    violation(kError, fmt::format("{} frame while a fragmented {} message is still open", opcode_name(op),
                                  opcode_name(uint8_t(message_op_))));
  }
}

void Codec::start_frame() {
  uint8_t len7 = head_[1] & 0x7f;
  size_t at = 2;
  uint64_t len = len7;
  if (len7 == 126) {
    len = (uint64_t(head_[2]) << 8) | head_[3];
    at = 4;
  } else if (len7 == 127) {
    len = 0;
    for (size_t k = 2; k < 10; ++k) len = (len << 8) | head_[k];
    at = 10;
    if (len >> 63) violation(close_code::protocol_error, "64-bit payload length with its most significant bit set");
  }
  std::memcpy(mask_, head_ + at, 4);
  mask_phase_ = 0;
  fin_ = head_[0] & 0x80;
  frame_op_ = static_cast<Opcode>(head_[0] & 0x0f);
  remaining_ = len;
  head_len_ = 0;
  in_payload_ = true;

  if (is_control(frame_op_)) {
    control_.clear();
    return;
  }
  // A data frame: refuse a message over the limit before buffering a byte of it.
  size_t have = frame_op_ == Opcode::continuation ? message_.size() : 0;
  if (len > limits_.max_message - have)
    violation(close_code::too_big, fmt::format("message of more than {} bytes ({} buffered, a frame of {} more)",
                                               limits_.max_message, have, len));
  if (frame_op_ != Opcode::continuation) {
    message_open_ = true;
    message_op_ = frame_op_;
    message_.clear();
  }
}

void Codec::end_frame(std::vector<Message>& out) {
  in_payload_ = false;
  if (is_control(frame_op_)) {
    if (frame_op_ == Opcode::close) {
      if (control_.size() == 1) violation(close_code::protocol_error, "close frame with a 1-byte payload");
      if (control_.size() >= 2) {
        uint16_t code = static_cast<uint16_t>((uint8_t(control_[0]) << 8) | uint8_t(control_[1]));
        if (!valid_close_code(code))
          violation(close_code::protocol_error, fmt::format("close frame with status code {}", code));
        if (auto bad = first_invalid_utf8(std::string_view(control_).substr(2)))
          violation(close_code::invalid_payload, fmt::format("close reason is not UTF-8 (byte {})", *bad));
      }
      closed_ = true;
    }
    out.push_back(Message{frame_op_, std::move(control_)});
    control_.clear();
    return;
  }
  if (!fin_) return;
  if (message_op_ == Opcode::text) {
    if (auto bad = first_invalid_utf8(message_))
      violation(close_code::invalid_payload,
                fmt::format("text message is not UTF-8 (byte {} of {})", *bad, message_.size()));
  }
  message_open_ = false;
  out.push_back(Message{message_op_, std::move(message_)});
  message_.clear();
}

void Codec::feed(std::string_view bytes, std::vector<Message>& out) {
  if (failed_) throw ProtocolError(close_code::protocol_error, "websocket: connection already failed");
  size_t i = 0;
  while (i < bytes.size()) {
    if (closed_) violation(close_code::protocol_error, "data after the close frame");
    if (!in_payload_) {
      size_t need = header_size();
      size_t n = std::min(need - head_len_, bytes.size() - i);
      std::memcpy(head_ + head_len_, bytes.data() + i, n);
      bool had_first_two = head_len_ >= 2;
      head_len_ += n;
      i += n;
      if (head_len_ < 2) continue;
      if (!had_first_two) {
        check_first_bytes();
        need = header_size();
      }
      if (head_len_ < need) continue;
      start_frame();
      if (remaining_ == 0) end_frame(out);
      continue;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size() - i));
    std::string& dst = is_control(frame_op_) ? control_ : message_;
    size_t at = dst.size();
    dst.append(bytes.data() + i, n);
    unmask(dst.data() + at, n, mask_, mask_phase_);
    remaining_ -= n;
    i += n;
    if (remaining_ == 0) end_frame(out);
  }
}

void Codec::encode(std::string& out, Opcode opcode, std::string_view payload) {
  if (opcode == Opcode::continuation) fail_code(EINVAL, "websocket: server messages are not fragmented");
  if (is_control(opcode) && payload.size() > kMaxControl)
    fail_code(EINVAL, "websocket: {} frame of {} bytes (at most {})", opcode_name(uint8_t(opcode)), payload.size(),
              kMaxControl);
  put_header(out, opcode, payload.size());
  out.append(payload);
}

void Codec::close(std::string& out, uint16_t code, std::string_view reason) {
  if (!valid_close_code(code)) fail_code(EINVAL, "websocket: close code {} may not be sent", code);
  std::string_view r = utf8_prefix(reason, kMaxControl - 2);
  put_header(out, Opcode::close, 2 + r.size());
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xff);
  out.append(r);
}

std::string_view protocol_name(Protocol p) {
  switch (p) {
  case Protocol::channel: return "channel.k8s.io";
  case Protocol::v4_channel: return "v4.channel.k8s.io";
  case Protocol::v5_channel: return "v5.channel.k8s.io";
  case Protocol::base64_channel: return "base64.channel.k8s.io";
  case Protocol::v4_base64_channel: return "v4.base64.channel.k8s.io";
  }
  return "";
}

std::optional<Protocol> protocol_from_name(std::string_view name) {
  if (name.empty()) return Protocol::channel;
  for (Protocol p : {Protocol::channel, Protocol::v4_channel, Protocol::v5_channel, Protocol::base64_channel,
                     Protocol::v4_base64_channel})
    if (protocol_name(p) == name) return p;
  return std::nullopt;
}

bool is_base64(Protocol p) { return p == Protocol::base64_channel || p == Protocol::v4_base64_channel; }

bool has_close_signal(Protocol p) { return p == Protocol::v5_channel; }

std::optional<std::string_view> negotiate(std::span<const std::string_view> client_headers,
                                          std::span<const std::string_view> server) {
  // The client's names, in one pass over its header lines: a view per name.
  std::vector<std::string_view> offered;
  for (std::string_view header : client_headers) {
    while (!header.empty()) {
      size_t comma = header.find(',');
      std::string_view name = trim_ows(header.substr(0, comma));
      if (!name.empty()) offered.push_back(name);
      if (comma == std::string_view::npos) break;
      header.remove_prefix(comma + 1);
    }
  }
  for (const std::string_view& ours : server) {
    if (ours.empty()) {
      if (offered.empty()) return ours;
      continue;
    }
    for (std::string_view theirs : offered)
      if (theirs == ours) return ours;
  }
  return std::nullopt;
}

void encode_channel(std::string& out, Protocol p, uint8_t channel, std::string_view bytes) {
  if (!is_base64(p)) {
    put_header(out, Opcode::binary, 1 + bytes.size());
    out += static_cast<char>(channel);
    out.append(bytes);
    return;
  }
  if (channel > 0x7f - '0')
    fail_code(EINVAL, "websocket: channel {} has no character in {}", channel, protocol_name(p));
  std::string text = base64_encode(bytes);
  put_header(out, Opcode::text, 1 + text.size());
  out += static_cast<char>('0' + channel);
  out += text;
}

void encode_close_signal(std::string& out, Protocol p, uint8_t channel) {
  if (!has_close_signal(p)) fail_code(EINVAL, "websocket: {} has no close signal", protocol_name(p));
  const char signal[2] = {static_cast<char>(kCloseSignal), static_cast<char>(channel)};
  Codec::encode(out, Opcode::binary, std::string_view(signal, 2));
}

ChannelData decode_channel(Protocol p, const Message& m) {
  if (m.opcode != Opcode::text && m.opcode != Opcode::binary)
    throw ProtocolError(close_code::unsupported_data, fmt::format("websocket: {} message where {} expects data",
                                                                  opcode_name(uint8_t(m.opcode)), protocol_name(p)));
  if (m.payload.empty())
    throw ProtocolError(close_code::protocol_error,
                        fmt::format("websocket: empty {} message (no channel)", protocol_name(p)));
  uint8_t first = static_cast<uint8_t>(m.payload[0]);
  std::string_view rest = std::string_view(m.payload).substr(1);
  ChannelData d;
  if (!is_base64(p)) {
    if (has_close_signal(p) && first == kCloseSignal) {
      if (rest.size() != 1)
        throw ProtocolError(close_code::protocol_error,
                            fmt::format("websocket: close signal of {} bytes (the channel byte alone)", rest.size()));
      d.channel = static_cast<uint8_t>(rest[0]);
      d.close = true;
      return d;
    }
    d.channel = first;
    d.data.assign(rest);
    return d;
  }
  if (first < '0' || first > 0x7f)
    throw ProtocolError(close_code::invalid_payload,
                        fmt::format("websocket: {} message for channel character 0x{:02x}", protocol_name(p), first));
  d.channel = static_cast<uint8_t>(first - '0');
  // Go's decoder, wsstream's, skips CR and LF: a client that wraps its base64 lines works there.
  std::string compact;
  if (rest.find_first_of("\r\n") != std::string_view::npos) {
    for (char c : rest)
      if (c != '\r' && c != '\n') compact += c;
    rest = compact;
  }
  auto data = base64_decode(rest);
  if (!data)
    throw ProtocolError(close_code::invalid_payload,
                        fmt::format("websocket: channel {} message of {} bytes is not base64", d.channel, rest.size()));
  d.data = std::move(*data);
  return d;
}

} // namespace berth::stream::ws
