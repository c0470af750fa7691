// WebSocket (RFC 6455) framing for berthd's stream server, server side, and the Kubernetes
// channel subprotocols carried over it (exec, attach, port-forward). A pure codec: bytes
// read from the upgraded socket go in, complete messages come out; frames to write come
// out as bytes. libmicrohttpd does the HTTP upgrade; cri/server's stream code owns the
// socket, the session and the replies (pong, close) this codec asks for.
//
// The channel subprotocols, as the real peers speak them (k8s.io/apimachinery's
// util/httpstream/wsstream, moved to k8s.io/streaming's httpstream/wsstream; 1.26 had it in
// k8s.io/apiserver's util/wsstream; the CRI side is k8s.io/cri-streaming, formerly the
// kubelet's cri/streaming; the clients are client-go's tools/remotecommand/websocket.go and
// Python's kubernetes.stream.ws_client on websocket-client):
//
// Negotiation. The client lists subprotocols in Sec-WebSocket-Protocol (comma-separated,
// possibly in several header lines); the server answers with exactly one. A client that
// names none gets the binary "channel.k8s.io" behaviour (wsstream then answers with an
// empty Sec-WebSocket-Protocol; RFC 6455 asks for no header). Names the server does not
// know are skipped (browsers add "base64url.bearer.authorization.k8s.io.<token>"); none
// known is a refusal. client-go's WebSocket executor offers only "v5.channel.k8s.io":
// kubectl >= 1.30 uses it toward the API server (which speaks SPDY on to the kubelet), and
// crictl --transport websocket straight to the runtime's stream server, where
// k8s.io/cri-streaming (containerd's, v0.36) offers no v5 for exec and attach and so
// refuses it; berthd offers v5 (kExecProtocols). Python's client offers
// "v5.channel.k8s.io,v4.channel.k8s.io".
//
// Binary family: "channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io". Every data
// message, both ways, is [channel byte][bytes]. The server sends binary frames (client-go
// fails the session on any other message type). Clients may send text frames as well:
// Python's client sends a str as a text frame chr(channel) + str, and wsstream reads both
// opcodes alike.
//
// Base64 family: "base64.channel.k8s.io", "v4.base64.channel.k8s.io". Every data message
// is text: the channel as the character '0' + n, then the bytes in standard padded base64
// (RFC 4648 section 4): "1Cg==" is "\n" on channel 1. The server decodes what it receives
// (Go's decoder skips CR and LF) and sends text frames.
//
// Exec and attach channels: 0 stdin (client to server), 1 stdout, 2 stderr, 3 error
// (server to client), 4 resize (client to server, JSON {"Width":w,"Height":h}). The
// unversioned names write a plain error text on 3; "v4." and "v5." write a JSON
// metav1.Status there ({"metadata":{},"status":"Success"}, or "Failure" with reason
// "NonZeroExitCode" and details.causes [{"reason":"ExitCode","message":"<code>"}]). The
// server's first message: ONE empty message on the lowest channel it writes (stdout if
// requested, else stderr, else the error channel), on the wire [0x01] or "1", telling the
// client the streams are up; not one per channel.
//
// Port forward: ports from the "port" query parameter (repeated or comma-separated); two
// channels per port i: 2i data (both ways) and 2i+1 error (server to client); protocols
// "v4.channel.k8s.io", "v4.base64.channel.k8s.io" or none. The server's first message on
// EACH of the two channels is the port as a little-endian uint16, [2i, lo, hi] and
// [2i+1, lo, hi] (Python's client checks both and fails on anything else).
//
// The v5 close signal ("v5.channel.k8s.io" only): channel byte 255 followed by exactly one
// byte, the channel its sender is done writing: client-go sends [255, 0] when its stdin
// reaches EOF, and the process must then see EOF on its stdin. wsstream ends the connection
// on a close signal of another length or naming a channel it does not have. A server may
// send one too (Python's client marks that channel closed; client-go discards it as a
// message for an unknown stream).
//
// The connection around them: client-go pings every 5 s with an empty payload and fails
// the session when no pong has come for 61 s (only pongs move its read deadline), so every
// ping needs its pong. It takes close code 1000 as the clean end (its readers see EOF) and
// anything else, a TCP close without a close frame included, as an error; the exit status
// on channel 3 is read to EOF, so the server ends an exec with the status, then close 1000.
// gorilla/websocket (client-go's library) fragments a message larger than its 4 KiB write
// buffer into continuation frames. It checks what it receives much as this codec does
// (frames from the server unmasked, RSV bits clear, control frames unfragmented and at most
// 125 bytes, close codes from its list, close reasons in UTF-8), but not the UTF-8 of text
// messages, and it takes a 1-byte close payload as "no status".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace berth::stream::ws {

// RFC 6455 section 4.2.2: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), the
// Sec-WebSocket-Accept for a Sec-WebSocket-Key. Throws berth::Error(EINVAL) unless the key
// is base64 of 16 bytes (section 4.1), as gorilla's upgrader refuses it.
std::string accept_key(std::string_view sec_websocket_key);

enum class Opcode : uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Close status codes (RFC 6455 section 7.4.1) this codec sends or reports.
namespace close_code {
inline constexpr uint16_t normal = 1000;
inline constexpr uint16_t going_away = 1001;
inline constexpr uint16_t protocol_error = 1002;
inline constexpr uint16_t unsupported_data = 1003;
inline constexpr uint16_t no_status = 1005;  // never on the wire: a close frame without a code
inline constexpr uint16_t invalid_payload = 1007;
inline constexpr uint16_t policy_violation = 1008;
inline constexpr uint16_t too_big = 1009;
inline constexpr uint16_t internal_error = 1011;
} // namespace close_code

// A violation by the peer: berth::Error with EPROTO and a message naming it, plus the close
// code to send before closing the connection.
class ProtocolError : public Error {
public:
  ProtocolError(uint16_t close_code, std::string msg) : Error(EPROTO, std::move(msg)), close_code_(close_code) {}
  uint16_t close_code() const noexcept { return close_code_; }

private:
  uint16_t close_code_;
};

// A complete message: data messages with their fragments joined (opcode text or binary),
// control frames (close, ping, pong) as they come, between fragments included.
struct Message {
  Opcode opcode;
  std::string payload;
};

struct Limits {
  // The largest data message, all fragments together. Also bounds what one connection
  // buffers: at most this plus one control frame and one frame header.
  size_t max_message = size_t{1} << 20;
};

// The status of a received close message (the Codec has checked it): code no_status and an
// empty reason when the frame had no payload. The reason points into `close.payload`.
struct CloseStatus {
  uint16_t code;
  std::string_view reason;
};
CloseStatus close_status(const Message& close);

// Parses a client's frames, server side. Every rule of RFC 6455 sections 5 and 8.1 that
// applies without extensions is enforced, but one: a length in a longer form than needed
// is read (the rule binds the sender; gorilla and Go's x/net read such frames too). The
// first violation throws ProtocolError. Bytes
// are copied once, into the message being assembled; no input is buffered beyond one frame
// header, so feeding in any chunking (byte by byte included) is linear.
class Codec {
public:
  explicit Codec(Limits limits = {});

  // Appends the messages completed by `bytes` to `out`. On a throw, what was appended
  // before the violation stays valid, and the codec is done: every later feed throws.
  // After a close message nothing more may come (a byte more is a violation); the caller
  // answers it with close() and closes the socket.
  void feed(std::string_view bytes, std::vector<Message>& out);

  // True once a close message was delivered.
  bool closed() const noexcept { return closed_; }

  // Appends one server frame: FIN set, unmasked. Throws berth::Error(EINVAL) for a control
  // frame over 125 bytes or the continuation opcode (server messages are not fragmented).
  // Text payloads are the caller's to keep in UTF-8.
  static void encode(std::string& out, Opcode opcode, std::string_view payload);

  // Appends a close frame: the code, then the reason cut to fit 125 bytes at a UTF-8
  // boundary (and before any byte that is not UTF-8). Throws berth::Error(EINVAL) for a code
  // that may not be sent (1005, 1006, 1015, 1014 that gorilla refuses, unregistered ones).
  static void close(std::string& out, uint16_t code, std::string_view reason = {});

private:
  [[noreturn]] void violation(uint16_t code, std::string msg);
  size_t header_size() const;
  void check_first_bytes();
  void start_frame();
  void end_frame(std::vector<Message>& out);

  Limits limits_;
  bool failed_ = false;
  bool closed_ = false;

  // The frame header being read: at most 2 + 8 + 4 bytes.
  uint8_t head_[14] = {};
  size_t head_len_ = 0;

  // The frame whose payload is being read.
  bool in_payload_ = false;
  bool fin_ = false;
  Opcode frame_op_ = Opcode::continuation;
  uint64_t remaining_ = 0;
  uint8_t mask_[4] = {};
  size_t mask_phase_ = 0;

  // The data message being assembled (open from its first frame to its FIN frame), and
  // the control frame being read.
  bool message_open_ = false;
  Opcode message_op_ = Opcode::binary;
  std::string message_;
  std::string control_;
};

// The Kubernetes channel subprotocols (see the top of this file).
enum class Protocol : uint8_t { channel, v4_channel, v5_channel, base64_channel, v4_base64_channel };

// Its Sec-WebSocket-Protocol name.
std::string_view protocol_name(Protocol p);
// The protocol a negotiated name stands for; "" (the client named none) is channel.k8s.io.
std::optional<Protocol> protocol_from_name(std::string_view name);
bool is_base64(Protocol p);
// Only v5 has the close signal: channel byte kCloseSignal, then the closed channel.
bool has_close_signal(Protocol p);
inline constexpr uint8_t kCloseSignal = 255;

// The server's preference, best first, for negotiate(). "" last: a client that names no
// protocol gets channel.k8s.io.
inline constexpr std::string_view kExecProtocols[] = {"v5.channel.k8s.io", "v4.channel.k8s.io",
                                                      "v4.base64.channel.k8s.io", "channel.k8s.io",
                                                      "base64.channel.k8s.io", ""};
inline constexpr std::string_view kPortForwardProtocols[] = {"v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""};

// Picks the server's most preferred protocol among those the client offered, given the
// values of every Sec-WebSocket-Protocol header line (comma-separated names, blanks around
// them ignored, names compared exactly). A client that offered none gets "" when `server`
// lists "" (answer without the header). nullopt: nothing in common, refuse the upgrade.
// The result points into `server`.
std::optional<std::string_view> negotiate(std::span<const std::string_view> client_headers,
                                          std::span<const std::string_view> server);

// One message of a channel protocol. For a v5 close signal, `close` is set, `channel` is
// the channel the peer closed and `data` is empty.
struct ChannelData {
  uint8_t channel = 0;
  std::string data;
  bool close = false;
};

// Appends the frame carrying `bytes` on `channel`: binary [channel][bytes], or for the
// base64 family text '0'+channel then base64 (channel at most 79, to stay ASCII; else
// berth::Error(EINVAL)). Empty bytes are allowed: the server's first message is one.
void encode_channel(std::string& out, Protocol p, uint8_t channel, std::string_view bytes);
// Appends a v5 close signal for `channel`. berth::Error(EINVAL) for another protocol.
void encode_close_signal(std::string& out, Protocol p, uint8_t channel);

// Decodes a data message (text or binary; both are accepted in both families, as wsstream
// does). Throws ProtocolError for a control message (1003), an empty message (1002), a
// base64 message whose first character is not a channel or whose rest is not base64
// (1007), and a v5 close signal not exactly 2 bytes long (1002). wsstream drops empty and
// undecodable messages and keeps the connection (its library answers control frames
// itself); it ends the connection on a bad close signal. Whether the channel exists is the
// caller's business.
ChannelData decode_channel(Protocol p, const Message& m);

} // namespace berth::stream::ws
