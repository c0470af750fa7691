#include "cri/pod/shim_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <fmt/format.h>

#include "common/daemon_log.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "common/subprocess.hpp"
#include "common/unix_socket.hpp"
#include "shim/lib/protocol.hpp"

namespace berth::cri {
namespace {

using Clock = std::chrono::steady_clock;

std::string last_line(std::string_view text) {
  text = trim(text);
  auto nl = text.rfind('\n');
  std::string line(nl == std::string_view::npos ? text : text.substr(nl + 1));
  if (line.size() > 4096) line.resize(4096);
  return line;
}

// Waits until fd is readable or the deadline passes (false).
bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) fail_errno("poll");
  }
}

std::string shim_dir(const ShimSettings& shim, const std::string& id) { return path_join(shim.state_root, id); }

// RFC 3339 UTC with up to nine fractional digits ("2026-11-26T17:07:19.318977808Z").
int64_t parse_rfc3339_ns(const std::string& s) {
  struct tm tm {};
  const char* rest = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return 0;
  int64_t frac = 0;
  int digits = 0;
  if (*rest == '.') {
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest)
      if (digits < 9) frac = frac * 10 + (*rest - '0'), ++digits;
  }
  while (digits++ < 9) frac *= 10;
  return static_cast<int64_t>(::timegm(&tm)) * 1000000000 + frac;
}

} // namespace

ShimStarted run_shim(const ShimSettings& shim, const ShimRun& run) {
  std::vector<std::string> args = {"run", "--id", run.id, "--bundle", run.bundle, "--runtime", run.runtime,
                                   "--state-dir", shim.state_root, "--exit-dir", shim.exit_dir,
                                   "--timeout", std::to_string(std::max<int64_t>(1, shim.timeout.count() / 1000)),
                                   "--log-format", dlog::format() == dlog::Format::json ? "json" : "text"};
  // The shim's diagnostics join berthd's log (its journal stream under systemd), in
  // berthd's line format, tagged with the container's id. (A berthd started without a
  // stderr has none to pass: the shim then discards them.)
  UniqueFd own_stderr(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3));
  if (own_stderr) args.insert(args.end(), {"--shim-log-fd", "3"});
  for (const auto& a : run.runtime_args) args.insert(args.end(), {"--runtime-arg", a});
  if (!run.log_path.empty()) args.insert(args.end(), {"--log-path", run.log_path});
  if (run.stdin_pipe) args.push_back("--stdin");
  if (run.stdin_once) args.push_back("--stdin-once");
  if (run.start) args.push_back("--start");
  if (run.delete_after) args.push_back("--delete");
  RunOptions opts;
  opts.timeout = shim.timeout + std::chrono::seconds(5);
  opts.max_output = 64 << 10;
  opts.pass_fd = own_stderr.get();
  CommandResult r = run_command(shim.binary, args, opts);
  if (!r.ok()) {
    std::string msg = last_line(r.err.empty() ? r.out : r.err);
    const std::string prefix = "berth-shim: ";
    if (starts_with(msg, prefix)) msg = msg.substr(prefix.size());
    if (msg.empty()) msg = r.describe();
    fail("{}", msg);
  }
  json j = json::parse(last_line(r.out), nullptr, false);
  if (!j.is_object() || !j.contains("pid"))
    fail("berth-shim run: unexpected output \"{}\"", last_line(r.out));
  return {j.value("pid", int64_t{0}), j.value("shim_pid", int64_t{0})};
}

ExitRecord parse_exit_record(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j["exit_code"].is_number_integer())
    fail("exit file {}: not an exit record", origin);
  ExitRecord e;
  e.exit_code = j["exit_code"].get<int>();
  e.signal = j.value("signal", 0);
  e.oom_killed = j.value("oom_killed", false);
  e.exited_ns = parse_rfc3339_ns(j.value("exited_at", ""));
  return e;
}

std::optional<ExitRecord> read_exit_record(const std::string& exit_dir, const std::string& id) {
  std::string path = path_join(exit_dir, id);
  auto text = try_read_file(path);
  if (!text) return std::nullopt;
  return parse_exit_record(*text, path);
}

std::optional<json> shim_request(const ShimSettings& shim, const std::string& id, const std::string& request,
                                 std::chrono::milliseconds timeout) {
  std::string sock_path = path_join(shim_dir(shim, id), "ctl.sock");
  UniqueFd sock;
  try {
    sock = connect_unix(sock_path);
  } catch (const Error& e) {
    if (e.code() == ENOENT || e.code() == ECONNREFUSED) return std::nullopt;
    throw;
  }
  write_all(sock.get(), request + "\n");
  auto deadline = Clock::now() + timeout;
  std::string reply;
  char buf[4096];
  while (reply.find('\n') == std::string::npos) {
    if (!wait_readable(sock.get(), deadline)) fail("shim of {}: no answer to \"{}\" within {} ms", id, request, timeout.count());
    ssize_t n = ::read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read from {}", sock_path);
    if (n == 0) return std::nullopt;  // the shim ended while we waited
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > (1 << 20)) fail("shim of {}: reply too long", id);
  }
  json j = json::parse(reply.substr(0, reply.find('\n')), nullptr, false);
  if (!j.is_object()) fail("shim of {}: unparsable reply to \"{}\"", id, request);
  if (!j.value("ok", false)) fail("shim of {}: {}", id, j.value("error", std::string("request failed")));
  return j;
}

bool shim_alive(const ShimSettings& shim, const std::string& id) {
  try {
    connect_unix(path_join(shim_dir(shim, id), "ctl.sock"));
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string shim_attach_socket(const ShimSettings& shim, const std::string& id) {
  return path_join(shim_dir(shim, id), "attach.sock");
}

ExecSyncResult shim_exec_sync(const ShimSettings& shim, const std::string& id, const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout, size_t max_output) {
  namespace frame = shim::frame;
  std::string sock_path = shim_attach_socket(shim, id);
  UniqueFd sock = with_context("container is not running (no shim)", [&] { return connect_unix(sock_path, SOCK_SEQPACKET); });
  json req = {{"args", argv}, {"tty", false}, {"stdin", false}};
  if (timeout.count() > 0) req["timeout"] = static_cast<double>(timeout.count()) / 1000.0;
  std::string msg(1, frame::kExec);
  msg += req.dump();
  if (msg.size() > frame::kMaxPayload) fail("exec request too large ({} bytes)", msg.size());
  if (::send(sock.get(), msg.data(), msg.size(), MSG_NOSIGNAL) < 0) fail_errno("send exec request to {}", sock_path);

  ExecSyncResult res;
  // The shim enforces the timeout; ours only guards against a shim that stops answering.
  auto deadline = Clock::now() + (timeout.count() > 0 ? timeout + std::chrono::seconds(10) : std::chrono::hours(24 * 365));
  std::string buf(frame::kMaxPayload + 1, '\0');
  for (;;) {
    if (!wait_readable(sock.get(), deadline)) fail("exec in {}: the shim did not report an exit", id);
    ssize_t n = ::recv(sock.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("receive from {}", sock_path);
    if (n == 0) fail("exec in {}: the shim closed the connection without an exit status", id);
    std::string_view payload(buf.data() + 1, static_cast<size_t>(n - 1));
    switch (buf[0]) {
    case frame::kStdout:
    case frame::kStderr: {
      std::string& out = buf[0] == frame::kStdout ? res.out : res.err;
      size_t used = res.out.size() + res.err.size();
      size_t room = used < max_output ? max_output - used : 0;
      if (payload.size() > room) res.truncated = true;
      out.append(payload.substr(0, room));
      break;
    }
    case frame::kFailed:
      fail("exec in {}: {}", id, payload.substr(0, 4096));
    case frame::kExit: {
      json j = json::parse(payload, nullptr, false);
      if (!j.is_object()) fail("exec in {}: unparsable exit status", id);
      res.exit_code = j.value("exit_code", -1);
      res.timed_out = j.value("timed_out", false);
      return res;
    }
    default:
      break;  // kStarted
    }
  }
}

} // namespace berth::cri
