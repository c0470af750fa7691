// SPDY/3 framing (the "SPDY/3.1" that kubelet, crictl and kubectl upgrade an exec, attach
// or port-forward connection to): a pure codec, bytes in and frames out, frames in and
// bytes out. One Codec per connection holds the two zlib streams of SPDY's header
// compression, which live as long as the connection, one per direction. No sockets, no
// threads: berthd's stream server owns the fd, output buffering and policy.
//
// The peer is untrusted. Everything is bounded (Limits): a control frame is buffered whole
// up to max_control_frame, a header block is inflated incrementally up to
// max_header_block (no zlib bomb), DATA payloads are never buffered (they are handed out
// as they arrive). Any violation throws berth::Error (EPROTO) naming it, and is fatal for
// the connection: the zlib stream may be out of step, so feed() refuses to go on.
//
// What Go's spdystream sends and expects (github.com/moby/spdystream at f0be51f, driven by
// client-go through k8s.io/apimachinery/pkg/util/httpstream/spdy's connection.go, since
// moved to k8s.io/streaming), which is all a server has to satisfy:
// - Framing is SPDY/3 (version field 3; Go never checks the field it reads); "SPDY/3.1"
//   is only the Upgrade token. There is NO flow control: the client sends no SETTINGS
//   (nothing at all before its first SYN_STREAM), never sends WINDOW_UPDATE, and ignores
//   both when it receives them (parsed, then dropped as an "unhandled frame type"). So
//   the server must never wait on a window, per stream or per session: backpressure is
//   TCP's (the client stops reading the socket while a stream's consumer is slow), and
//   the server's own output buffer must be bounded, with the container's output left
//   unread while the socket is not writable.
// - Streams: the client opens odd ids 1, 3, 5... with SYN_STREAM (headers "streamtype",
//   "port", "requestid"...; priority 0, no flags) and waits up to 30 s for each one's
//   SYN_REPLY before opening the next; client-go's own server replies with an empty
//   header list, fin false. DATA on a stream before its SYN_REPLY is dropped by the
//   client. A side half-closes with an empty DATA frame carrying FIN. A client's DATA
//   frame is as big as one Write: 32 KiB from io.Copy, but the whole buffer from a
//   strings.Reader or bytes.Buffer, up to 16 MiB - 1; hence DATA is streamed here.
// - PING: client-go pings every 5 s (odd ids 1, 3, 5...) and expects each echoed with the
//   same id; it echoes a PING whose id has the other parity, so a server's pings must
//   be even. A PING id of 0, a flag on PING, GOAWAY or WINDOW_UPDATE, a GOAWAY or
//   WINDOW_UPDATE not 8 bytes long, an RST_STREAM with status 0 or an unknown control
//   frame type is a read error that ends the client's whole connection.
// - RST_STREAM: the client resets (CANCEL) each stream it has not finished when it
//   closes; on receiving one it ends that stream (reads see EOF, later DATA is dropped).
// - GOAWAY: the client sends GOAWAY(OK, last good id 0: it takes no server streams) when
//   it closes. On receiving one it stops reading the connection at once (frames after
//   GOAWAY are never seen), waits for its streams to end, then closes. So GOAWAY is the
//   last frame a server sends. Its status code is ignored.
// - Header blocks: zlib with the SPDY/3 dictionary, one stream per direction, each block
//   ended with a sync flush (as here). Go lower-cases names and joins several values with
//   NUL. Its reader requires a block's compressed bytes to be used up exactly, and reads
//   them through a 4 KiB buffer: keep the blocks a server sends well under 4 KiB (an
//   empty SYN_REPLY's block is 16 bytes the first time, 8 after). It refuses a frame
//   carrying connection, keep-alive, proxy-connection or transfer-encoding (and host in
//   a SYN_STREAM); the encoders here refuse those names too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::stream::spdy {

inline constexpr uint16_t kVersion = 3;
inline constexpr uint32_t kMaxStreamId = 0x7fffffff;
// A frame's length field is 24 bits.
inline constexpr size_t kMaxFrameLength = 0xffffff;

// Header names are lower-case and unique within a block; a value holding several values
// separates them with NUL (split_values()).
using HeaderList = std::vector<std::pair<std::string, std::string>>;

enum class FrameType : uint16_t {
  data = 0,  // not a control frame type: DATA frames have the control bit clear
  syn_stream = 1,
  syn_reply = 2,
  rst_stream = 3,
  settings = 4,
  ping = 6,
  goaway = 7,
  headers = 8,
  window_update = 9,
};

// "SYN_STREAM", "DATA"... for messages and logs.
std::string_view frame_type_name(FrameType type);

// RST_STREAM status codes (SPDY/3 2.4.2). 0 is not a status.
inline constexpr uint32_t kRstProtocolError = 1;
inline constexpr uint32_t kRstInvalidStream = 2;
inline constexpr uint32_t kRstRefusedStream = 3;
inline constexpr uint32_t kRstUnsupportedVersion = 4;
inline constexpr uint32_t kRstCancel = 5;
inline constexpr uint32_t kRstInternalError = 6;
inline constexpr uint32_t kRstFlowControlError = 7;
inline constexpr uint32_t kRstStreamInUse = 8;
inline constexpr uint32_t kRstStreamAlreadyClosed = 9;
inline constexpr uint32_t kRstInvalidCredentials = 10;
inline constexpr uint32_t kRstFrameTooLarge = 11;

// GOAWAY status codes. The draft's text gives INTERNAL_ERROR as 11; Chromium, Netty and
// spdystream use 2 (spdystream ignores the code anyway).
inline constexpr uint32_t kGoAwayOk = 0;
inline constexpr uint32_t kGoAwayProtocolError = 1;
inline constexpr uint32_t kGoAwayInternalError = 2;

// SETTINGS ids and flags (SPDY/3 2.6.4); spdystream sends none and ignores them all.
inline constexpr uint32_t kSettingUploadBandwidth = 1;
inline constexpr uint32_t kSettingDownloadBandwidth = 2;
inline constexpr uint32_t kSettingRoundTripTime = 3;
inline constexpr uint32_t kSettingMaxConcurrentStreams = 4;
inline constexpr uint32_t kSettingCurrentCwnd = 5;
inline constexpr uint32_t kSettingDownloadRetransRate = 6;
inline constexpr uint32_t kSettingInitialWindowSize = 7;
inline constexpr uint32_t kSettingClientCertificateVectorSize = 8;
inline constexpr uint8_t kSettingFlagPersistValue = 0x1;
inline constexpr uint8_t kSettingFlagPersisted = 0x2;

struct Setting {
  uint8_t flags = 0;  // kSettingFlag*
  uint32_t id = 0;    // 24 bits
  uint32_t value = 0;
  bool operator==(const Setting&) const = default;
};

struct Frame {
  FrameType type = FrameType::data;
  // The stream of every frame but SETTINGS and PING; for GOAWAY the last good stream id;
  // for WINDOW_UPDATE 0 is the session (SPDY/3.1). Never above kMaxStreamId.
  uint32_t stream_id = 0;
  uint32_t associated_id = 0;   // SYN_STREAM (0: none)
  uint8_t priority = 0;         // SYN_STREAM: 0 (highest) to 7
  uint8_t slot = 0;             // SYN_STREAM: credential slot (unused by every peer)
  bool fin = false;             // SYN_STREAM, SYN_REPLY, HEADERS, DATA: the sender's last frame
  bool unidirectional = false;  // SYN_STREAM
  bool clear_settings = false;  // SETTINGS
  HeaderList headers;           // SYN_STREAM, SYN_REPLY, HEADERS
  // DATA: a piece of the frame's payload (see Codec::feed); fin is set on the last piece.
  std::string data;
  uint32_t status = 0;            // RST_STREAM (never 0), GOAWAY
  uint32_t delta = 0;             // WINDOW_UPDATE: 1 to 2^31 - 1
  uint32_t ping_id = 0;           // PING (never 0)
  std::vector<Setting> settings;  // SETTINGS
};

struct Limits {
  // Payload bytes of one control frame, which is buffered whole. DATA is not buffered and
  // may be as long as the 24-bit length allows; unknown control frames are skipped
  // unbuffered (the draft says to ignore them).
  size_t max_control_frame = 1 << 20;
  // Bytes of one header block once inflated.
  size_t max_header_block = 64 << 10;
  // Headers in one block.
  size_t max_headers = 64;
};

class Codec {
public:
  explicit Codec(Limits limits = {});
  ~Codec();
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;
  // The zlib streams stay where they are (on the heap); a moved-from Codec may only be
  // destroyed or assigned to.
  Codec(Codec&&) noexcept;
  Codec& operator=(Codec&&) noexcept;

  // Decodes the peer's bytes, appending every frame they complete to `out`; a partial
  // frame is kept for the next call (at most one, at most max_control_frame bytes). DATA
  // payloads are handed out as they arrive: one frame on the wire may come out as several
  // DATA frames on the same stream (one per call at most), fin only on the last, and a
  // DATA frame of length 0 comes out as one empty DATA frame. Frames of unknown types
  // are skipped. Throws berth::Error (EPROTO) on any protocol violation; frames appended
  // before the violation stay in `out`. After a throw every later call throws.
  void feed(std::string_view bytes, std::vector<Frame>& out);
  // A frame has been started and not finished: the peer closing now cut it short.
  bool mid_frame() const;

  // Encoders append one frame (DATA: one or more) to `out`. Arguments are checked (stream
  // ids 1 to kMaxStreamId, header names lower-case printable ASCII and unique, values
  // without leading, trailing or doubled NUL, nonzero RST status and PING id...): a bad
  // one throws berth::Error (EINVAL) and appends nothing. The header-block encoders
  // advance this direction's zlib stream, so their frames must all be sent, in order.
  // Decoding errors do not affect encoding: a GOAWAY can follow a failed feed().
  void syn_stream(std::string& out, uint32_t id, uint32_t associated_id, uint8_t priority, const HeaderList& headers,
                  bool fin, bool unidirectional = false);
  void syn_reply(std::string& out, uint32_t id, const HeaderList& headers, bool fin);
  void headers(std::string& out, uint32_t id, const HeaderList& headers, bool fin);
  // A payload longer than kMaxFrameLength is split over several frames, fin on the last.
  static void data(std::string& out, uint32_t id, std::string_view payload, bool fin);
  static void rst_stream(std::string& out, uint32_t id, uint32_t status);
  static void settings(std::string& out, const std::vector<Setting>& settings, bool clear = false);
  static void ping(std::string& out, uint32_t id);
  static void goaway(std::string& out, uint32_t last_good_id, uint32_t status);
  // id 0: the session's window (SPDY/3.1).
  static void window_update(std::string& out, uint32_t id, uint32_t delta);

private:
  enum class State { header, control, data, skip };
  void start_frame(std::vector<Frame>& out);
  void finish_control(std::vector<Frame>& out);
  HeaderList read_header_block(std::string_view compressed, FrameType type);
  void write_header_frame(std::string& out, FrameType type, std::string_view fixed, uint8_t flags,
                          const HeaderList& headers);

  Limits limits_;
  State state_ = State::header;
  bool failed_ = false;
  unsigned char head_[8] = {};
  size_t head_len_ = 0;
  // The control frame being received (type_raw_ may be a type this codec skips).
  uint16_t type_raw_ = 0;
  uint8_t flags_ = 0;
  size_t length_ = 0;
  std::string payload_;
  // The DATA frame or skipped frame being received.
  uint32_t data_stream_ = 0;
  bool data_fin_ = false;
  size_t left_ = 0;
  struct Zlib;
  std::unique_ptr<Zlib> zlib_;
};

// The value of header `name` (NUL-separated when it holds several); nullopt when absent.
std::optional<std::string_view> find_header(const HeaderList& headers, std::string_view name);
// A value's NUL-separated values ("" gives one empty value).
std::vector<std::string_view> split_values(std::string_view value);
// The SPDY/3 header compression dictionary (draft 3, 2.6.10.1), 1423 bytes.
std::string_view header_dictionary();

} // namespace berth::stream::spdy
