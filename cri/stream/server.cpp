#include "cri/stream/server.hpp"

#include <sys/eventfd.h>
#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "common/daemon_log.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/fd.hpp"
#include "cri/stream/mhd_lazy.hpp"
#include "cri/stream/session.hpp"
#include "cri/stream/websocket.hpp"

namespace berth::stream {
namespace {

enum class Kind { exec, attach, portforward };
const char* kind_path(Kind k) { return k == Kind::exec ? "exec" : k == Kind::attach ? "attach" : "portforward"; }

// The subprotocols the kubelet's stream server speaks, most preferred first.
const std::vector<std::string> kSpdyRemoteCommand = {"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                                                     "channel.k8s.io"};
const std::vector<std::string> kSpdyPortForward = {"portforward.k8s.io"};
// WebSocket: the kubelet's set (wsstream), and v5 (stdin close signal) as newer servers.
const std::vector<std::string> kWsRemoteCommand = {"v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
                                                   "channel.k8s.io", "base64.channel.k8s.io"};
const std::vector<std::string> kWsPortForward = {"v4.channel.k8s.io", "v4.base64.channel.k8s.io"};

// 128 random bits: a URL cannot be guessed while it is valid.
std::string new_token() {
  unsigned char bytes[16];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) fail_errno("getrandom");
  std::string token;
  for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
  return token;
}

struct Pending {
  Kind kind;
  std::variant<ProcessTarget, PortForwardTarget> target;
  Clock::time_point expires;
};

// What a request carries from the access handler to the upgrade handler (con_cls).
struct RequestState {
  bool seen = false;
  bool holds_slot = false;  // counted in reserved until its session runs or it ends
  SessionStart start;
};

bool equals_ci(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Every value of a header (it may come several times, each a comma-separated list).
struct HeaderValues {
  const char* name;
  std::vector<std::string> values;
};
MHD_Result collect_header(void* cls, MHD_ValueKind, const char* key, const char* value) noexcept {
  auto& h = *static_cast<HeaderValues*>(cls);
  if (!key || !value || !equals_ci(key, h.name)) return MHD_YES;
  try {
    for (auto& part : split(value, ',')) {
      std::string v(trim(part));
      if (!v.empty() && h.values.size() < 32) h.values.push_back(v);
    }
  } catch (const std::exception&) {
    return MHD_NO;  // out of memory: stop iterating
  }
  return MHD_YES;
}

// The first protocol the client offers that we speak, in the client's order (as
// apimachinery's httpstream.Handshake picks); "" when none.
std::string negotiate(const std::vector<std::string>& offered, const std::vector<std::string>& ours) {
  for (const auto& p : offered)
    if (std::find(ours.begin(), ours.end(), p) != ours.end()) return p;
  return {};
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

} // namespace

struct Server::Impl {
  ServerConfig cfg;
  mutable std::mutex mu;
  const MhdApi* mhd = nullptr;
  MHD_Daemon* daemon = nullptr;
  std::string url_base;  // "http://127.0.0.1:43121"
  UniqueFd stop_fd;
  bool stopping = false;
  std::map<std::string, Pending> pending;
  struct Running {
    std::thread thread;
    std::shared_ptr<bool> done;
    std::string subject;     // the container or sandbox id
    std::shared_ptr<UniqueFd> cancel;  // an eventfd: the session ends when it is readable
  };
  std::vector<Running> sessions;
  size_t reserved = 0;  // upgrades answered whose session has not started yet

  std::string add(Kind kind, std::variant<ProcessTarget, PortForwardTarget> target);
  void start_locked();
  void reap_locked();
  void expire_locked(Clock::time_point now);
  MHD_Result handle(MHD_Connection* conn, const char* url, const char* method, void** con_cls);
  MHD_Result reply(MHD_Connection* conn, unsigned code, const std::string& body,
                   std::initializer_list<std::pair<const char*, std::string>> headers = {});
  void upgraded(RequestState& state, const char* extra_in, size_t extra_in_size, MHD_socket sock,
                MHD_UpgradeResponseHandle* urh);
  void release_slot() {
    std::lock_guard lk(mu);
    reserved--;
  }
};

namespace {

// libmicrohttpd's callbacks run on its C thread: nothing may escape them (an exception
// there would end berthd).
MHD_Result access_handler(void* cls, MHD_Connection* conn, const char* url, const char* method, const char*,
                          const char*, size_t* upload_size, void** con_cls) noexcept {
  *upload_size = 0;  // a request body, if any, is ignored
  try {
    return static_cast<Server::Impl*>(cls)->handle(conn, url, method, con_cls);
  } catch (const std::exception& e) {
    dlog::warn("stream server: request failed", {{"error", e.what()}});
    return MHD_NO;  // libmicrohttpd closes the connection
  }
}

void upgrade_handler(void* cls, MHD_Connection*, void* con_cls, const char* extra_in, size_t extra_in_size,
                     MHD_socket sock, MHD_UpgradeResponseHandle* urh) noexcept {
  auto* impl = static_cast<Server::Impl*>(cls);
  try {
    impl->upgraded(*static_cast<RequestState*>(con_cls), extra_in, extra_in_size, sock, urh);
  } catch (const std::exception& e) {
    dlog::warn("stream server: cannot start a session", {{"error", e.what()}});
    impl->mhd->upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
  }
}

void request_completed(void* cls, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) noexcept {
  auto* state = static_cast<RequestState*>(*con_cls);
  if (state && state->holds_slot) static_cast<Server::Impl*>(cls)->release_slot();
  delete state;
  *con_cls = nullptr;
}

} // namespace

MHD_Result Server::Impl::reply(MHD_Connection* conn, unsigned code, const std::string& body,
                               std::initializer_list<std::pair<const char*, std::string>> headers) {
  MHD_Response* r = mhd->create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                     MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  mhd->add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
  for (const auto& [k, v] : headers) mhd->add_response_header(r, k, v.c_str());
  MHD_Result ret = mhd->queue_response(conn, code, r);
  mhd->destroy_response(r);
  return ret;
}

// Called by libmicrohttpd's thread for each request: the token is looked up (and used
// up) here; an upgrade request gets 101 and its session, anything else a clear error.
MHD_Result Server::Impl::handle(MHD_Connection* conn, const char* url, const char* method, void** con_cls) {
  if (!*con_cls) {  // headers received; answer on the next call, as libmicrohttpd wants
    *con_cls = new RequestState();
    return MHD_YES;
  }
  auto& state = *static_cast<RequestState*>(*con_cls);
  if (state.seen) return MHD_YES;
  state.seen = true;
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "POST") != 0)
    return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "stream server: only GET and POST\n");
  std::string_view path = url;
  Kind kind;
  std::string_view token;
  for (Kind k : {Kind::exec, Kind::attach, Kind::portforward}) {
    std::string prefix = fmt::format("/{}/", kind_path(k));
    if (path.substr(0, prefix.size()) == prefix) {
      kind = k;
      token = path.substr(prefix.size());
      break;
    }
  }
  if (token.empty() || token.size() > 64 || token.find('/') != std::string_view::npos)
    return reply(conn, MHD_HTTP_NOT_FOUND, "404 page not found\n");

  std::optional<Pending> found;
  size_t running;
  {
    std::lock_guard lk(mu);
    expire_locked(Clock::now());
    // Used up even when asked for under another kind, as the kubelet's cache does.
    auto it = pending.find(std::string(token));
    if (it != pending.end()) {
      if (it->second.kind == kind) found = std::move(it->second);
      pending.erase(it);
    }
    reap_locked();
    running = sessions.size() + reserved;
    if (stopping) return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "stream server: shutting down\n");
    // A slot is held from here until the session runs or the request ends, so upgrades
    // racing each other cannot pass the limit together.
    if (found && running < cfg.max_sessions) {
      reserved++;
      state.holds_slot = true;
    }
  }
  // As the kubelet's server answers an unknown, expired or used token.
  if (!found) return reply(conn, MHD_HTTP_NOT_FOUND, "404 page not found\n");
  if (running >= cfg.max_sessions)
    return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                 fmt::format("stream server: {} sessions already running (the limit)\n", cfg.max_sessions));

  const char* upgrade = mhd->lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
  SessionStart& s = state.start;
  s.target = std::move(found->target);
  s.attach = kind == Kind::attach;
  s.idle_timeout = cfg.idle_timeout;
  s.creation_timeout = cfg.creation_timeout;
  MHD_Response* r = nullptr;
  if (upgrade && equals_ci(trim(upgrade), "SPDY/3.1")) {
    HeaderValues offered{"X-Stream-Protocol-Version", {}};
    mhd->get_connection_values(conn, MHD_HEADER_KIND, &collect_header, &offered);
    const auto& ours = kind == Kind::portforward ? kSpdyPortForward : kSpdyRemoteCommand;
    s.wire = Wire::spdy;
    if (offered.values.empty())
      return reply(conn, MHD_HTTP_BAD_REQUEST, "unable to upgrade: X-Stream-Protocol-Version is required\n");
    s.protocol = negotiate(offered.values, ours);
    if (s.protocol.empty())
      return reply(conn, MHD_HTTP_FORBIDDEN,
                   fmt::format("stream server: none of the offered protocols {} is supported\n", join(offered.values)),
                   {{"X-Accepted-Stream-Protocol-Versions", join(ours)}});
    r = mhd->create_response_for_upgrade(&upgrade_handler, this);
    if (!r) return MHD_NO;
    mhd->add_response_header(r, "Connection", "Upgrade");
    mhd->add_response_header(r, "Upgrade", "SPDY/3.1");
    mhd->add_response_header(r, "X-Stream-Protocol-Version", s.protocol.c_str());
  } else if (upgrade && equals_ci(trim(upgrade), "websocket")) {
    if (std::strcmp(method, "GET") != 0)
      return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "stream server: a WebSocket upgrade must be a GET\n");
    const char* key = mhd->lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char* version = mhd->lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    std::string accept;
    try {
      if (key) accept = ws::accept_key(trim(key));
    } catch (const Error&) {
      key = nullptr;  // not base64 of 16 bytes
    }
    if (!key || !version || trim(version) != "13")
      return reply(conn, MHD_HTTP_BAD_REQUEST, "stream server: a WebSocket upgrade needs Sec-WebSocket-Key and "
                                               "Sec-WebSocket-Version 13\n",
                   {{"Sec-WebSocket-Version", "13"}});
    HeaderValues offered{"Sec-WebSocket-Protocol", {}};
    mhd->get_connection_values(conn, MHD_HEADER_KIND, &collect_header, &offered);
    const auto& ours = kind == Kind::portforward ? kWsPortForward : kWsRemoteCommand;
    s.wire = Wire::websocket;
    // A client that names no subprotocol gets the plain binary framing (no header back).
    s.protocol = !offered.values.empty()      ? negotiate(offered.values, ours)
                 : kind == Kind::portforward ? std::string("v4.channel.k8s.io")
                                             : std::string("channel.k8s.io");
    if (s.protocol.empty())
      return reply(conn, MHD_HTTP_BAD_REQUEST,
                   fmt::format("stream server: none of the offered subprotocols {} is supported (ours: {})\n",
                               join(offered.values), join(ours)));
    if (kind == Kind::portforward && std::get<PortForwardTarget>(s.target).ports.empty()) {
      // The CRI request named no port (the kubelet fills it from its own query string and
      // proxies without it): a client that reaches us directly may name them here,
      // ?port=8080&port=9090 or ?port=8080,9090.
      HeaderValues ports{"port", {}};
      mhd->get_connection_values(conn, MHD_GET_ARGUMENT_KIND, &collect_header, &ports);
      for (const auto& p : ports.values) {
        auto n = parse_int(p);
        if (!n || *n < 1 || *n > 65535)
          return reply(conn, MHD_HTTP_BAD_REQUEST, fmt::format("stream server: port {:?} is not a port\n", p.substr(0, 16)));
        std::get<PortForwardTarget>(s.target).ports.push_back(static_cast<uint16_t>(*n));
      }
      if (std::get<PortForwardTarget>(s.target).ports.empty())
        return reply(conn, MHD_HTTP_BAD_REQUEST, "query parameter \"port\" is required\n");
    }
    // Base64 framing names a channel with one ASCII character from '0': 40 ports at most.
    if (kind == Kind::portforward && s.protocol.find("base64") != std::string::npos &&
        std::get<PortForwardTarget>(s.target).ports.size() > 40)
      return reply(conn, MHD_HTTP_BAD_REQUEST, "stream server: at most 40 ports with base64 framing\n");
    r = mhd->create_response_for_upgrade(&upgrade_handler, this);
    if (!r) return MHD_NO;
    mhd->add_response_header(r, "Connection", "Upgrade");
    mhd->add_response_header(r, "Upgrade", "websocket");
    mhd->add_response_header(r, "Sec-WebSocket-Accept", accept.c_str());
    if (!offered.values.empty()) mhd->add_response_header(r, "Sec-WebSocket-Protocol", s.protocol.c_str());
  } else {
    return reply(conn, MHD_HTTP_BAD_REQUEST,
                 "stream server: the request must upgrade the connection (Upgrade: SPDY/3.1 or websocket)\n");
  }
  MHD_Result ret = mhd->queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
  mhd->destroy_response(r);
  return ret;
}

void Server::Impl::upgraded(RequestState& state, const char* extra_in, size_t extra_in_size, MHD_socket sock,
                            MHD_UpgradeResponseHandle* urh) {
  SessionStart start = std::move(state.start);
  start.fd = sock;
  start.extra_in.assign(extra_in ? extra_in : "", extra_in ? extra_in_size : 0);
  std::lock_guard lk(mu);
  if (state.holds_slot) {
    state.holds_slot = false;
    reserved--;
  }
  // After shutdown() took the sessions to join, no thread may start: it would outlive
  // the server.
  if (stopping) {
    mhd->upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }
  auto cancel = std::make_shared<UniqueFd>(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!*cancel) fail_errno("eventfd");
  start.stop_fd = stop_fd.get();
  start.cancel_fd = cancel->get();
  std::string subject = std::holds_alternative<PortForwardTarget>(start.target)
                            ? std::get<PortForwardTarget>(start.target).sandbox_id
                            : std::get<ProcessTarget>(start.target).container_id;
  auto done = std::make_shared<bool>(false);
  const MhdApi* api = mhd;
  // The thread hands the socket back to libmicrohttpd (which closes it) when the session
  // ends; `done` lets the server join it later.
  sessions.push_back({std::thread([start = std::move(start), urh, api, done, cancel, this]() mutable {
                        run_session(std::move(start));
                        api->upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
                        std::lock_guard lk(mu);
                        *done = true;
                      }),
                      done, std::move(subject), cancel});
}

void Server::Impl::reap_locked() {
  for (auto it = sessions.begin(); it != sessions.end();) {
    if (*it->done) {
      it->thread.join();  // it has set done as its last step: this returns at once
      it = sessions.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::Impl::expire_locked(Clock::time_point now) {
  std::erase_if(pending, [&](const auto& kv) { return kv.second.expires <= now; });
}

void Server::Impl::start_locked() {
  if (daemon) return;
  std::string error;
  mhd = MhdLibrary::instance().acquire(error);
  if (!mhd) fail("stream server: cannot load {}: {}", MhdLibrary::instance().soname(), error);
  auto addr = sock_addr(cfg.address, cfg.port);
  if (!addr) fail_code(EINVAL, "stream server: address {:?} is not an IP address", cfg.address);
  const sockaddr* sa = addr->get();
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
  if (addr->v6) flags |= MHD_USE_IPv6;
  std::string cert, key;
  bool tls = !cfg.tls_cert.empty();
  if (tls) {
    cert = read_file(cfg.tls_cert);
    key = read_file(cfg.tls_key);
    flags |= MHD_USE_TLS;
  }
  if (!stop_fd) {
    stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd) fail_errno("stream server: eventfd");
  }
  // Before the upgrade, a connection is libmicrohttpd's: at most 32 KiB of request, 30 s
  // to send it, 256 connections, 32 from one address. After it, the session's limits
  // (idle and stream-creation timeouts, max_sessions) apply.
  // Upgraded connections count against both limits until their session ends, and the
  // clients of a node (the kubelet, crictl) all come from one address: on loopback no
  // per-address limit, elsewhere room for every session.
  unsigned conn_limit = cfg.max_sessions + 128, timeout = 30;
  unsigned per_ip = addr->loopback ? 0 : cfg.max_sessions + 32;
  size_t mem_limit = 32 * 1024;
  char* log_name = const_cast<char*>("stream server");
  if (tls) {
    daemon = mhd->start_daemon(flags, cfg.port, nullptr, nullptr, &access_handler, this, MHD_OPTION_EXTERNAL_LOGGER,
                               &mhd_log, log_name, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem_limit, MHD_OPTION_NOTIFY_COMPLETED,
                               &request_completed, this, MHD_OPTION_HTTPS_MEM_CERT, cert.c_str(),
                               MHD_OPTION_HTTPS_MEM_KEY, key.c_str(), MHD_OPTION_END);
  } else {
    daemon = mhd->start_daemon(flags, cfg.port, nullptr, nullptr, &access_handler, this, MHD_OPTION_EXTERNAL_LOGGER,
                               &mhd_log, log_name, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem_limit, MHD_OPTION_NOTIFY_COMPLETED,
                               &request_completed, this, MHD_OPTION_END);
  }
  if (!daemon) {
    MhdLibrary::instance().release();
    mhd = nullptr;
    fail("stream server: cannot listen on {}:{}{}", cfg.address, cfg.port,
         tls ? " (or the TLS certificate/key is not usable)" : " (in use?)");
  }
  const MHD_DaemonInfo* info = mhd->get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
  uint16_t port = info ? info->port : cfg.port;
  url_base = fmt::format("{}://{}:{}", tls ? "https" : "http", addr->v6 ? "[" + cfg.address + "]" : cfg.address, port);
  dlog::info("stream server listening", {{"url", url_base}});
}

std::string Server::Impl::add(Kind kind, std::variant<ProcessTarget, PortForwardTarget> target) {
  std::lock_guard lk(mu);
  if (stopping) fail_code(ECANCELED, "stream server: shutting down");
  start_locked();
  auto now = Clock::now();
  expire_locked(now);
  if (pending.size() >= cfg.max_pending)
    fail_code(ENOSPC, "stream server: {} stream requests are waiting for their client already (the limit)",
              cfg.max_pending);
  std::string token = new_token();
  pending[token] = Pending{kind, std::move(target), now + cfg.token_ttl};
  return fmt::format("{}/{}/{}", url_base, kind_path(kind), token);
}

Server::Server(ServerConfig cfg) : impl_(std::make_unique<Impl>()) { impl_->cfg = std::move(cfg); }

Server::~Server() { shutdown(); }

std::string Server::exec(ProcessTarget target) { return impl_->add(Kind::exec, std::move(target)); }
std::string Server::attach(ProcessTarget target) { return impl_->add(Kind::attach, std::move(target)); }
std::string Server::port_forward(PortForwardTarget target) {
  return impl_->add(Kind::portforward, std::move(target));
}

void Server::shutdown() {
  std::vector<Impl::Running> sessions;
  MHD_Daemon* daemon;
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    impl_->pending.clear();
    if (impl_->stop_fd) {
      uint64_t one = 1;
      (void)!::write(impl_->stop_fd.get(), &one, sizeof one);
    }
    daemon = impl_->daemon;
  }
  // Sessions end on the stop eventfd; joined outside the lock (each takes it to finish).
  // New upgrades cannot come: the handler refuses while stopping.
  for (;;) {
    std::vector<Impl::Running> batch;
    {
      std::lock_guard lk(impl_->mu);
      batch.swap(impl_->sessions);
    }
    if (batch.empty()) break;
    for (auto& s : batch) s.thread.join();
  }
  if (daemon) {
    impl_->mhd->stop_daemon(daemon);
    MhdLibrary::instance().release();
  }
}

void Server::cancel(const std::string& id) {
  std::lock_guard lk(impl_->mu);
  for (auto& s : impl_->sessions)
    if (s.subject == id && !*s.done) {
      uint64_t one = 1;
      (void)!::write(s.cancel->get(), &one, sizeof one);
    }
}

} // namespace berth::stream
