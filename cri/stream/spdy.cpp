#include "cri/stream/spdy.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <unordered_set>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::stream::spdy {

namespace {

constexpr uint8_t kFlagFin = 0x01;
constexpr uint8_t kFlagUnidirectional = 0x02;
constexpr uint8_t kFlagClearSettings = 0x01;
constexpr uint32_t kControlBit = 0x80000000;
constexpr uint32_t kStreamMask = 0x7fffffff;
// A payload buffer grown by a large control frame is given back after it: a connection
// that once sent 1 MiB of SETTINGS does not keep 1 MiB.
constexpr size_t kKeepCapacity = 16 << 10;

uint32_t get32(const unsigned char* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

void put32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void put_control_header(std::string& out, FrameType type, uint8_t flags, size_t length) {
  put32(out, kControlBit | uint32_t{kVersion} << 16 | static_cast<uint16_t>(type));
  put32(out, uint32_t{flags} << 24 | static_cast<uint32_t>(length));
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

template <typename... Args>
[[noreturn]] void violation(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(EPROTO, "spdy: " + fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void bad_argument(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(EINVAL, "spdy: " + fmt::format(f, std::forward<Args>(args)...));
}

// Names are US-ASCII and lower-case (draft 3, 2.6.10); printable without space is this
// codec's reading of "ASCII" for a name, and covers every name HTTP or SPDY uses
// (":host", "x-stream-protocol-version").
bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z')) return false;
  return true;
}

// Empty, or NUL-separated values each at least one byte long (draft 3, 2.6.10).
bool valid_value(std::string_view value) {
  if (value.empty()) return true;
  return value.front() != '\0' && value.back() != '\0' &&
         value.find(std::string_view("\0\0", 2)) == std::string_view::npos;
}

// Connection-specific headers have no meaning in SPDY (draft 3, 3.2.1), and spdystream
// rejects a frame carrying one (host only in a SYN_STREAM, where SPDY has ":host").
bool forbidden_name(std::string_view name, FrameType type) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" || name == "transfer-encoding" ||
         (type == FrameType::syn_stream && name == "host");
}

// Types 1 to 9 but 5 (NOOP, gone in version 3); CREDENTIAL (10) is not spoken here.
bool known_type(uint16_t type) { return type >= 1 && type <= 9 && type != 5; }

// Flags each control frame defines; any other bit set is a violation.
uint8_t allowed_flags(FrameType type) {
  switch (type) {
  case FrameType::syn_stream: return kFlagFin | kFlagUnidirectional;
  case FrameType::syn_reply:
  case FrameType::headers: return kFlagFin;
  case FrameType::settings: return kFlagClearSettings;
  default: return 0;
  }
}

void check_stream_id(uint32_t id, std::string_view what) {
  if (id == 0 || id > kMaxStreamId) bad_argument("{} stream id {} is outside 1 to 2^31 - 1", what, id);
}

// The header block before compression: count, then length-prefixed names and values.
std::string encode_block(const HeaderList& headers, FrameType type) {
  std::string raw;
  put32(raw, static_cast<uint32_t>(headers.size()));
  std::unordered_set<std::string_view> seen;
  for (const auto& [name, value] : headers) {
    if (!valid_name(name)) bad_argument("header name {} is not lower-case printable ASCII", quoted_value(name));
    if (forbidden_name(name, type)) bad_argument("header {} is not allowed in a {}", name, frame_type_name(type));
    if (!seen.insert(name).second) bad_argument("header {} appears twice", name);
    if (!valid_value(value)) bad_argument("header {} has an empty value in its NUL-separated list", name);
    if (name.size() > kMaxFrameLength || value.size() > kMaxFrameLength || raw.size() > kMaxFrameLength)
      bad_argument("header block too large for a frame");
    put32(raw, static_cast<uint32_t>(name.size()));
    raw += name;
    put32(raw, static_cast<uint32_t>(value.size()));
    raw += value;
  }
  return raw;
}

// The dictionary as the draft gives it: common header names and values, each with a
// 32-bit length before it, then a run of common value text.
std::string build_dictionary() {
  // clang-format off
  static constexpr std::string_view kWords[] = {
      "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
      "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
      "content-base", "content-encoding", "content-language", "content-length", "content-location",
      "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
      "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
      "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
      "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
      "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
      "public", "set-cookie", "keep-alive", "origin"};
  // clang-format on
  std::string d;
  for (std::string_view w : kWords) {
    put32(d, static_cast<uint32_t>(w.size()));
    d += w;
  }
  d += "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
       "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Una"
       "uthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service"
       " UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, "
       "Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,applicat"
       "ion/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf"
       "-8charset=iso-8859-1,utf-,*,enq=0.";
  return d;
}

} // namespace

std::string_view header_dictionary() {
  static const std::string dict = build_dictionary();
  return dict;
}

std::string_view frame_type_name(FrameType type) {
  switch (type) {
  case FrameType::data: return "DATA";
  case FrameType::syn_stream: return "SYN_STREAM";
  case FrameType::syn_reply: return "SYN_REPLY";
  case FrameType::rst_stream: return "RST_STREAM";
  case FrameType::settings: return "SETTINGS";
  case FrameType::ping: return "PING";
  case FrameType::goaway: return "GOAWAY";
  case FrameType::headers: return "HEADERS";
  case FrameType::window_update: return "WINDOW_UPDATE";
  }
  return "unknown";
}

std::optional<std::string_view> find_header(const HeaderList& headers, std::string_view name) {
  for (const auto& [n, v] : headers)
    if (n == name) return std::string_view(v);
  return std::nullopt;
}

std::vector<std::string_view> split_values(std::string_view value) {
  std::vector<std::string_view> out;
  for (;;) {
    size_t nul = value.find('\0');
    out.push_back(value.substr(0, nul));
    if (nul == std::string_view::npos) return out;
    value.remove_prefix(nul + 1);
  }
}

// The two directions' zlib streams. Inflate takes the peer's window (any size up to
// 32 KiB). Deflate uses a 2 KiB window and small hash: the blocks a server sends are a
// few bytes, the dictionary (1423 bytes) still fits the window, and the state is ~20 KiB
// per connection instead of ~270 KiB with zlib's defaults.
struct Codec::Zlib {
  z_stream in{};
  z_stream out{};
  bool in_init = false, out_init = false;
  ~Zlib() {
    if (in_init) inflateEnd(&in);
    if (out_init) deflateEnd(&out);
  }
};

Codec::Codec(Limits limits) : limits_(limits), zlib_(std::make_unique<Zlib>()) {
  if (inflateInit(&zlib_->in) != Z_OK) fail_code(ENOMEM, "spdy: cannot initialise zlib");
  zlib_->in_init = true;
  if (deflateInit2(&zlib_->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 11, 4, Z_DEFAULT_STRATEGY) != Z_OK)
    fail_code(ENOMEM, "spdy: cannot initialise zlib");
  zlib_->out_init = true;
  auto dict = header_dictionary();
  if (deflateSetDictionary(&zlib_->out, bytes(dict), static_cast<uInt>(dict.size())) != Z_OK)
    fail_code(ENOMEM, "spdy: cannot set the header dictionary");
}

Codec::~Codec() = default;
Codec::Codec(Codec&&) noexcept = default;
Codec& Codec::operator=(Codec&&) noexcept = default;

bool Codec::mid_frame() const { return state_ != State::header || head_len_ > 0; }

void Codec::feed(std::string_view in, std::vector<Frame>& out) {
  if (failed_) violation("the connection already failed on a protocol error");
  try {
    while (!in.empty()) {
      switch (state_) {
      case State::header: {
        size_t n = std::min(sizeof head_ - head_len_, in.size());
        std::memcpy(head_ + head_len_, in.data(), n);
        head_len_ += n;
        in.remove_prefix(n);
        if (head_len_ == sizeof head_) {
          head_len_ = 0;
          start_frame(out);
        }
        break;
      }
      case State::control: {
        size_t n = std::min(length_ - payload_.size(), in.size());
        payload_.append(in.substr(0, n));
        in.remove_prefix(n);
        if (payload_.size() == length_) finish_control(out);
        break;
      }
      case State::data: {
        size_t n = std::min(left_, in.size());
        left_ -= n;
        Frame f;
        f.type = FrameType::data;
        f.stream_id = data_stream_;
        f.fin = data_fin_ && left_ == 0;
        f.data.assign(in.substr(0, n));
        in.remove_prefix(n);
        out.push_back(std::move(f));
        if (left_ == 0) state_ = State::header;
        break;
      }
      case State::skip: {
        size_t n = std::min(left_, in.size());
        left_ -= n;
        in.remove_prefix(n);
        if (left_ == 0) state_ = State::header;
        break;
      }
      }
    }
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void Codec::start_frame(std::vector<Frame>& out) {
  uint32_t word0 = get32(head_), word1 = get32(head_ + 4);
  flags_ = static_cast<uint8_t>(word1 >> 24);
  length_ = word1 & 0xffffff;
  if (!(word0 & kControlBit)) {
    data_stream_ = word0 & kStreamMask;
    if (data_stream_ == 0) violation("DATA frame on stream 0");
    if (flags_ & ~kFlagFin) violation("DATA frame on stream {} with undefined flags 0x{:02x}", data_stream_, flags_);
    data_fin_ = flags_ & kFlagFin;
    left_ = length_;
    if (length_ > 0) {
      state_ = State::data;
      return;
    }
    Frame f;
    f.type = FrameType::data;
    f.stream_id = data_stream_;
    f.fin = data_fin_;
    out.push_back(std::move(f));
    return;
  }
  uint16_t version = (word0 >> 16) & 0x7fff;
  type_raw_ = word0 & 0xffff;
  if (version != kVersion) violation("control frame of version {} (this is SPDY/3)", version);
  if (!known_type(type_raw_)) {
    left_ = length_;
    if (length_ > 0) state_ = State::skip;
    return;
  }
  auto type = static_cast<FrameType>(type_raw_);
  std::string_view name = frame_type_name(type);
  if (flags_ & ~allowed_flags(type)) violation("{} frame with undefined flags 0x{:02x}", name, flags_);
  // Lengths the frame's fields fix, checked now so that a bad one is not buffered first.
  size_t exact = 0, minimum = 0;
  switch (type) {
  case FrameType::syn_stream: minimum = 10; break;
  case FrameType::syn_reply:
  case FrameType::headers: minimum = 4; break;
  case FrameType::settings: minimum = 4; break;
  case FrameType::ping: exact = 4; break;
  case FrameType::rst_stream:
  case FrameType::goaway:
  case FrameType::window_update: exact = 8; break;
  case FrameType::data: break;
  }
  if (exact && length_ != exact) violation("{} frame of length {} (it is {})", name, length_, exact);
  if (length_ < minimum) violation("{} frame of length {} (it is at least {})", name, length_, minimum);
  if (type == FrameType::settings && (length_ - 4) % 8 != 0)
    violation("SETTINGS frame of length {} (4 plus 8 per entry)", length_);
  if (length_ > limits_.max_control_frame)
    violation("{} frame of {} bytes exceeds the limit of {}", name, length_, limits_.max_control_frame);
  state_ = State::control;
  payload_.clear();
  // Grown as bytes arrive: a length is a claim, not memory to set aside.
  payload_.reserve(std::min(length_, kKeepCapacity));
}

void Codec::finish_control(std::vector<Frame>& out) {
  auto type = static_cast<FrameType>(type_raw_);
  std::string_view payload = payload_;
  const unsigned char* p = bytes(payload);
  Frame f;
  f.type = type;
  switch (type) {
  case FrameType::syn_stream:
    f.stream_id = get32(p) & kStreamMask;
    if (f.stream_id == 0) violation("SYN_STREAM with stream id 0");
    f.associated_id = get32(p + 4) & kStreamMask;
    f.priority = p[8] >> 5;
    f.slot = p[9];
    f.fin = flags_ & kFlagFin;
    f.unidirectional = flags_ & kFlagUnidirectional;
    f.headers = read_header_block(payload.substr(10), type);
    break;
  case FrameType::syn_reply:
  case FrameType::headers:
    f.stream_id = get32(p) & kStreamMask;
    if (f.stream_id == 0) violation("{} with stream id 0", frame_type_name(type));
    f.fin = flags_ & kFlagFin;
    f.headers = read_header_block(payload.substr(4), type);
    break;
  case FrameType::rst_stream:
    f.stream_id = get32(p) & kStreamMask;
    f.status = get32(p + 4);
    if (f.stream_id == 0) violation("RST_STREAM with stream id 0");
    if (f.status == 0) violation("RST_STREAM on stream {} with status 0", f.stream_id);
    break;
  case FrameType::settings: {
    uint32_t count = get32(p);
    if (count != (payload.size() - 4) / 8)
      violation("SETTINGS frame of length {} says it has {} entries", payload.size(), count);
    f.clear_settings = flags_ & kFlagClearSettings;
    f.settings.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
      const unsigned char* e = p + 4 + 8 * size_t{i};
      Setting s{.flags = e[0], .id = get32(e) & 0xffffff, .value = get32(e + 4)};
      if (s.flags & ~(kSettingFlagPersistValue | kSettingFlagPersisted))
        violation("SETTINGS entry {} with undefined flags 0x{:02x}", s.id, s.flags);
      f.settings.push_back(s);
    }
    break;
  }
  case FrameType::ping:
    f.ping_id = get32(p);
    // The draft allows it, but spdystream takes PING 0 for a broken connection: no
    // client-go peer sends it.
    if (f.ping_id == 0) violation("PING with id 0");
    break;
  case FrameType::goaway:
    f.stream_id = get32(p) & kStreamMask;
    f.status = get32(p + 4);
    break;
  case FrameType::window_update:
    f.stream_id = get32(p) & kStreamMask;
    f.delta = get32(p + 4) & kStreamMask;
    if (f.delta == 0) violation("WINDOW_UPDATE on stream {} with delta 0", f.stream_id);
    break;
  case FrameType::data: break;
  }
  state_ = State::header;
  if (payload_.capacity() > kKeepCapacity) std::string().swap(payload_);
  out.push_back(std::move(f));
}

// Inflates one header block, continuing the connection's zlib stream, into at most
// max_header_block bytes (output is taken 4 KiB at a time and counted as it comes: a
// block that would inflate to gigabytes stops at the limit), then parses it.
HeaderList Codec::read_header_block(std::string_view compressed, FrameType type) {
  std::string_view name = frame_type_name(type);
  if (compressed.empty()) violation("{} without a header block", name);
  z_stream& z = zlib_->in;
  z.next_in = const_cast<Bytef*>(bytes(compressed));
  z.avail_in = static_cast<uInt>(compressed.size());
  std::string block;
  for (;;) {
    unsigned char chunk[4096];
    z.next_out = chunk;
    z.avail_out = sizeof chunk;
    int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      auto dict = header_dictionary();
      if (inflateSetDictionary(&z, bytes(dict), static_cast<uInt>(dict.size())) != Z_OK)
        violation("{} header block compressed with a dictionary other than SPDY/3's", name);
      continue;
    }
    size_t got = sizeof chunk - z.avail_out;
    if (got > limits_.max_header_block - block.size())
      violation("{} header block inflates past the limit of {} bytes", name, limits_.max_header_block);
    block.append(reinterpret_cast<char*>(chunk), got);
    if (rc == Z_STREAM_END) violation("{} header block ends the zlib stream (it must last the connection)", name);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc == Z_DATA_ERROR || rc == Z_STREAM_ERROR)
      violation("{} header block is not valid zlib data: {}", name, z.msg ? z.msg : "corrupt");
    // Z_OK or Z_BUF_ERROR (no progress possible): done once every input byte is used and
    // the output chunk was not filled (nothing left pending inside zlib).
    if (z.avail_in == 0 && z.avail_out != 0) break;
    if (rc == Z_BUF_ERROR) violation("{} header block is not valid zlib data", name);
  }

  const unsigned char* p = bytes(block);
  size_t pos = 0, size = block.size();
  auto take32 = [&](std::string_view what) {
    if (size - pos < 4) violation("{} header block truncated in {}", name, what);
    uint32_t v = get32(p + pos);
    pos += 4;
    return v;
  };
  auto take = [&](uint32_t len, std::string_view what) {
    if (size - pos < len) violation("{} header block truncated in {} ({} bytes, {} left)", name, what, len, size - pos);
    std::string s(block, pos, len);
    pos += len;
    return s;
  };
  uint32_t count = take32("the header count");
  if (count > limits_.max_headers)
    violation("{} header block of {} headers exceeds the limit of {}", name, count, limits_.max_headers);
  HeaderList headers;
  headers.reserve(count);
  std::unordered_set<std::string> seen;
  for (uint32_t i = 0; i < count; ++i) {
    std::string key = take(take32("a name length"), "a name");
    if (key.empty()) violation("{} header block with an empty header name", name);
    if (!valid_name(key)) violation("{} header name {} is not lower-case printable ASCII", name, quoted_value(key));
    if (forbidden_name(key, type)) violation("{} carries header {}, which SPDY forbids", name, key);
    if (!seen.insert(key).second) violation("{} header {} appears twice", name, key);
    std::string value = take(take32("a value length"), "a value");
    if (!valid_value(value)) violation("{} header {} has an empty value in its NUL-separated list", name, key);
    headers.emplace_back(std::move(key), std::move(value));
  }
  if (pos != size) violation("{} header block has {} bytes after its last header", name, size - pos);
  return headers;
}

void Codec::write_header_frame(std::string& out, FrameType type, std::string_view fixed, uint8_t flags,
                               const HeaderList& headers) {
  std::string raw = encode_block(headers, type);
  // Deflate can grow incompressible input by a few bytes per 16 KiB: refused well before
  // the 24-bit length, and before zlib is touched, so the stream stays in step.
  if (raw.size() > kMaxFrameLength - (64 << 10)) bad_argument("header block of {} bytes is too large", raw.size());
  std::string frame(8, '\0');
  frame += fixed;
  z_stream& z = zlib_->out;
  z.next_in = const_cast<Bytef*>(bytes(raw));
  z.avail_in = static_cast<uInt>(raw.size());
  do {
    size_t at = frame.size();
    frame.resize(at + 256 + raw.size());
    z.next_out = reinterpret_cast<Bytef*>(frame.data() + at);
    z.avail_out = static_cast<uInt>(frame.size() - at);
    int rc = deflate(&z, Z_SYNC_FLUSH);
    frame.resize(frame.size() - z.avail_out);
    if (rc != Z_OK && rc != Z_BUF_ERROR) fail_code(EIO, "spdy: header compression failed ({})", rc);
  } while (z.avail_out == 0 || z.avail_in != 0);
  std::string header;
  put_control_header(header, type, flags, frame.size() - 8);
  frame.replace(0, 8, header);
  out += frame;
}

void Codec::syn_stream(std::string& out, uint32_t id, uint32_t associated_id, uint8_t priority,
                       const HeaderList& headers, bool fin, bool unidirectional) {
  check_stream_id(id, "SYN_STREAM");
  if (associated_id > kMaxStreamId) bad_argument("SYN_STREAM associated stream id {} is above 2^31 - 1", associated_id);
  if (priority > 7) bad_argument("SYN_STREAM priority {} is above 7", priority);
  std::string fixed;
  put32(fixed, id);
  put32(fixed, associated_id);
  fixed += static_cast<char>(priority << 5);
  fixed += '\0';  // credential slot
  write_header_frame(out, FrameType::syn_stream, fixed,
                     (fin ? kFlagFin : 0) | (unidirectional ? kFlagUnidirectional : 0), headers);
}

void Codec::syn_reply(std::string& out, uint32_t id, const HeaderList& headers, bool fin) {
  check_stream_id(id, "SYN_REPLY");
  std::string fixed;
  put32(fixed, id);
  write_header_frame(out, FrameType::syn_reply, fixed, fin ? kFlagFin : 0, headers);
}

void Codec::headers(std::string& out, uint32_t id, const HeaderList& headers, bool fin) {
  check_stream_id(id, "HEADERS");
  std::string fixed;
  put32(fixed, id);
  write_header_frame(out, FrameType::headers, fixed, fin ? kFlagFin : 0, headers);
}

void Codec::data(std::string& out, uint32_t id, std::string_view payload, bool fin) {
  check_stream_id(id, "DATA");
  do {
    size_t n = std::min(payload.size(), kMaxFrameLength);
    bool last = n == payload.size();
    put32(out, id);
    uint32_t flags = last && fin ? kFlagFin : 0;
    put32(out, flags << 24 | static_cast<uint32_t>(n));
    out += payload.substr(0, n);
    payload.remove_prefix(n);
  } while (!payload.empty());
}

void Codec::rst_stream(std::string& out, uint32_t id, uint32_t status) {
  check_stream_id(id, "RST_STREAM");
  if (status == 0) bad_argument("RST_STREAM with status 0");
  put_control_header(out, FrameType::rst_stream, 0, 8);
  put32(out, id);
  put32(out, status);
}

void Codec::settings(std::string& out, const std::vector<Setting>& settings, bool clear) {
  if (settings.size() > (kMaxFrameLength - 4) / 8) bad_argument("SETTINGS with {} entries", settings.size());
  for (const Setting& s : settings)
    if (s.id > 0xffffff) bad_argument("SETTINGS id {} is above 24 bits", s.id);
  put_control_header(out, FrameType::settings, clear ? kFlagClearSettings : 0, 4 + 8 * settings.size());
  put32(out, static_cast<uint32_t>(settings.size()));
  for (const Setting& s : settings) {
    put32(out, uint32_t{s.flags} << 24 | s.id);
    put32(out, s.value);
  }
}

void Codec::ping(std::string& out, uint32_t id) {
  if (id == 0) bad_argument("PING with id 0");
  put_control_header(out, FrameType::ping, 0, 4);
  put32(out, id);
}

void Codec::goaway(std::string& out, uint32_t last_good_id, uint32_t status) {
  if (last_good_id > kMaxStreamId) bad_argument("GOAWAY last good stream id {} is above 2^31 - 1", last_good_id);
  put_control_header(out, FrameType::goaway, 0, 8);
  put32(out, last_good_id);
  put32(out, status);
}

void Codec::window_update(std::string& out, uint32_t id, uint32_t delta) {
  if (id > kMaxStreamId) bad_argument("WINDOW_UPDATE stream id {} is above 2^31 - 1", id);
  if (delta == 0 || delta > kMaxStreamId) bad_argument("WINDOW_UPDATE delta {} is outside 1 to 2^31 - 1", delta);
  put_control_header(out, FrameType::window_update, 0, 8);
  put32(out, id);
  put32(out, delta);
}

} // namespace berth::stream::spdy
