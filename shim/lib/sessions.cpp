// The shim's connections: ctl clients, attach clients, and exec sessions.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"
#include "shim/lib/monitor.hpp"
#include "shim/lib/unix_socket.hpp"

namespace berth::shim {

// A unix socket closed with unread data in its receive queue makes the peer's next
// read fail with ECONNRESET, before the frames still queued for it (the exit frame):
// read what the client sent so far, then close.
void discard_input(int fd) {
  char buf[4096];
  for (int i = 0; i < 256; i++) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    break;
  }
}

// ---- CtlClient ----------------------------------------------------------------

CtlClient::CtlClient(Monitor& monitor, UniqueFd fd) : monitor_(monitor), fd_(std::move(fd)) {
  monitor_.loop().add(fd_.get(), EPOLLIN, &watch_);
}

// Whatever a client sends must never end the monitor: a request that fails in a way
// nobody foresaw closes that connection, and the container goes on being served.
void CtlClient::on_event(int, uint32_t) {
  try {
    read_requests();
  } catch (const std::exception& e) {
    note(fmt::format("ctl client: {}: connection closed", e.what()));
    close();
  }
}

void CtlClient::read_requests() {
  char buf[512];
  while (fd_) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      close(); // end of file: a waiting client that hangs up is simply forgotten
      return;
    }
    input_.append(buf, static_cast<size_t>(n));
    size_t nl;
    while (fd_ && (nl = input_.find('\n')) != std::string::npos) {
      std::string line = input_.substr(0, nl);
      input_.erase(0, nl + 1);
      monitor_.handle_ctl(*this, line);
    }
    // Checked per read, so that a client streaming without newlines holds at most one
    // line's worth of our memory.
    if (fd_ && input_.size() > kMaxCtlLine) {
      reply(R"({"ok":false,"error":"request line too long"})");
      close();
    }
  }
}

void CtlClient::reply(const std::string& json_line) {
  if (!fd_) return;
  std::string line = json_line + "\n";
  // Replies are small: a client that cannot take one whole is broken.
  if (::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(line.size()))
    close();
  waiting = false;
}

void CtlClient::close() {
  if (!fd_) return;
  monitor_.loop().remove(fd_.get());
  discard_input(fd_.get());
  fd_.reset();
}

// ---- AttachClient -------------------------------------------------------------

AttachClient::AttachClient(Monitor& monitor, UniqueFd fd) : monitor_(monitor), fd_(std::move(fd)) {
  monitor_.loop().add(fd_.get(), EPOLLIN, &watch_);
}

void AttachClient::update_watch() {
  if (!fd_) return;
  uint32_t events = (input_paused ? 0u : uint32_t{EPOLLIN}) | (want_writable_ ? uint32_t{EPOLLOUT} : 0u);
  monitor_.loop().modify(fd_.get(), events, &watch_);
}

void AttachClient::pause_input(bool paused) {
  if (input_paused == paused) return;
  input_paused = paused;
  update_watch();
}

void AttachClient::want_writable(bool on) {
  if (want_writable_ == on) return;
  want_writable_ = on;
  update_watch();
}

bool AttachClient::send(char type, std::string_view payload) {
  return fd_ && send_frame(fd_.get(), type, payload);
}

void AttachClient::finish(char type, std::string_view payload) {
  if (!fd_) return;
  send_frame(fd_.get(), type, payload);
  close();
}

void AttachClient::close() {
  if (!fd_) return;
  monitor_.loop().remove(fd_.get());
  discard_input(fd_.get());
  fd_.reset();
  if (exec) {
    ExecSession* session = exec;
    exec = nullptr;
    session->client_gone();
  }
  monitor_.attach_client_closed(*this);
}

// As for ctl clients: no frame may end the monitor, only this connection.
void AttachClient::on_event(int, uint32_t events) {
  try {
    serve_events(events);
  } catch (const std::exception& e) {
    note(fmt::format("attach client: {}: connection closed", e.what()));
    close();
  }
}

void AttachClient::serve_events(uint32_t events) {
  if (!fd_) return;
  if ((events & EPOLLOUT) && exec) exec->client_writable();
  if (!fd_) return;
  if (input_paused) {
    // Only a hang-up can wake a paused client: it left, with its unread input.
    if (events & (EPOLLHUP | EPOLLERR)) close();
    return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  static char buf[frame::kMaxPayload + 1];
  for (int i = 0; i < 8 && fd_ && !input_paused; i++) {
    struct iovec iov {buf, sizeof buf};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      close();
      return;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      finish(frame::kFailed, fmt::format("frame larger than {} bytes", frame::kMaxPayload + 1));
      return;
    }
    handle_frame(buf[0], {buf + 1, static_cast<size_t>(n - 1)});
  }
}

void AttachClient::handle_frame(char type, std::string_view payload) {
  try {
    switch (mode) {
    case Mode::undecided:
      if (type == frame::kAttach) {
        // Optional payload {"stdin":bool,"tty":bool}: a session without stdin, or with a
        // tty (whose detach is not an end of input), does not own a StdinOnce stdin.
        if (!payload.empty()) {
          json req = json::parse(payload, nullptr, false);
          auto flag = [&](const char* key, bool dflt) {
            auto it = req.is_object() ? req.find(key) : req.end();
            return it != req.end() && it->is_boolean() ? it->get<bool>() : dflt;
          };
          if (!flag("stdin", true) || flag("tty", false)) owns_stdin = false;
        }
        monitor_.attach(*this);
      }
      else if (type == frame::kExec) monitor_.start_exec(*this, payload);
      else finish(frame::kFailed, "the first frame must be 'a' (attach) or 'x' (exec)");
      return;
    case Mode::attach:
      if (type == frame::kStdin) monitor_.attach_stdin(*this, payload);
      else if (type == frame::kCloseStdin) monitor_.attach_close_stdin();
      else if (type == frame::kResize) monitor_.attach_resize(payload);
      return; // unknown frames are ignored (newer clients)
    case Mode::exec:
      if (!exec) return;
      if (type == frame::kStdin) exec->client_stdin(payload);
      else if (type == frame::kCloseStdin) exec->client_close_stdin();
      else if (type == frame::kResize) exec->client_resize(payload);
      return;
    }
  } catch (const Error& e) {
    note(fmt::format("attach client: {}", e.what())); // a bad resize does not end a session
  }
}

// ---- ExecSession ----------------------------------------------------------------

namespace {
struct Pipe {
  UniqueFd read, write;
};
Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) fail_errno("pipe");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}
constexpr int64_t kExecDrainGraceMs = 1000;
} // namespace

ExecSession::ExecSession(Monitor& monitor, AttachClient& client, int number)
    : monitor_(monitor), client_(&client), number_(number) {}

// The pump may be the caller (its callbacks end sessions): close it, never destroy it
// here; the session's destructor does, after the loop's round.
void ExecSession::close_stdio() {
  if (stdio_) stdio_->close_all();
}

ExecSession::~ExecSession() {
  stdio_.reset();
  runtime_.kill_and_reap();
  for (const char* suffix : {".json", ".pid", ".log", ".sock"}) ::unlink(file(suffix).c_str());
}

std::string ExecSession::file(const char* suffix) const {
  return monitor_.paths().file(fmt::format("exec-{}{}", number_, suffix).c_str());
}

void ExecSession::start(std::string_view request) {
  const auto& opts = monitor_.options();
  json req = json::parse(request, nullptr, false);
  if (!req.is_object()) fail("exec request: expected a JSON object");
  JsonView v(req, "exec request");
  json process;
  if (req.contains("process")) {
    v["process"].expect_object();
    process = req["process"];
  } else {
    // Only args (and maybe tty, env, cwd): the rest comes from the container's config,
    // as `runc exec ID ARGS...` does.
    auto args = v.string_list("args");
    if (args.empty()) fail("exec request: give \"process\" or \"args\"");
    json config = json::parse(read_file(path_join(opts.bundle, "config.json")));
    process = config.value("process", json::object());
    process["args"] = args;
    process["terminal"] = v.opt_bool("tty").value_or(false);
    process.erase("consoleSize");
    for (auto& e : v.string_list("env")) process["env"].push_back(e);
    if (auto cwd = v.opt_string("cwd")) process["cwd"] = *cwd;
  }
  if (process.contains("terminal") && !process["terminal"].is_boolean())
    fail("exec request: process.terminal: expected a boolean");
  tty_ = process.value("terminal", false);
  want_stdin_ = v.opt_bool("stdin").value_or(false);
  if (req.contains("timeout")) {
    if (!req["timeout"].is_number() || req["timeout"].get<double>() < 0) fail("exec request: timeout: expected seconds");
    double seconds = req["timeout"].get<double>();
    if (seconds > 0) timeout_at_ = monotonic_ms() + static_cast<int64_t>(seconds * 1000);
  }
  write_file(file(".json"), process.dump(), true, 0600);

  std::vector<std::string> args{"exec", "--process", file(".json"), "--detach", "--pid-file", file(".pid")};
  Stdio child;
  if (tty_) {
    console_ = listen_unix(file(".sock"), SOCK_STREAM);
    args.insert(args.end(), {"--console-socket", file(".sock")});
  } else {
    Pipe out = make_pipe(), err = make_pipe();
    our_ends_.out = std::move(out.read);
    our_ends_.err = std::move(err.read);
    child_ends_.out = std::move(out.write);
    child_ends_.err = std::move(err.write);
    if (want_stdin_) {
      Pipe in = make_pipe();
      our_ends_.in = std::move(in.write);
      child_ends_.in = std::move(in.read);
    }
    child.in = child_ends_.in ? child_ends_.in.get() : -1;
    child.out = child_ends_.out.get();
    child.err = child_ends_.err.get();
  }
  args.push_back(opts.id);
  auto argv = runtime_argv(resolve_executable(opts.runtime), opts.runtime_args, file(".log"), args);
  runtime_ = spawn_process(argv, child, opts.bundle);
}

bool ExecSession::on_reaped(pid_t pid, int status) {
  if (runtime_ && pid == runtime_.pid()) {
    runtime_.release();
    runtime_exited(status);
    return true;
  }
  if (pid_ > 0 && pid == pid_ && !status_) {
    process_exited(status);
    return true;
  }
  return false;
}

void ExecSession::runtime_exited(int status) {
  child_ends_ = ProcessStdio{};
  auto fail_session = [&](const std::string& message) {
    if (client_) {
      client_->exec = nullptr;
      client_->finish(frame::kFailed, message);
      client_ = nullptr;
    }
    our_ends_ = ProcessStdio{};
    done_ = true;
  };
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    RunResult r;
    r.wait_status = status;
    r.timed_out = timed_out_;
    if (our_ends_.err) {
      char buf[4096];
      ::fcntl(our_ends_.err.get(), F_SETFL, O_NONBLOCK);
      ssize_t n = ::read(our_ends_.err.get(), buf, sizeof buf);
      if (n > 0) r.output.assign(buf, static_cast<size_t>(n));
    }
    fail_session(describe_runtime_failure("runtime exec", r, file(".log")));
    return;
  }
  try {
    auto text = read_file(file(".pid"));
    auto pid = parse_int(trim(text));
    if (!pid || *pid <= 0) fail("exec pid file: not a pid: \"{}\"", text);
    pid_ = static_cast<pid_t>(*pid);
    if (tty_) {
      UniqueFd conn = accept_connection(console_.get());
      if (!conn) fail("the runtime did not send the exec's pty master");
      our_ends_.tty = true;
      our_ends_.out = recv_fd(conn.get());
      console_.reset();
      ::unlink(file(".sock").c_str());
    }
  } catch (const Error& e) {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    fail_session(e.what());
    // The process (if any) is still reaped: keep the session until then.
    done_ = pid_ <= 0;
    return;
  }
  if (client_) {
    stdio_ = std::make_unique<StdioPump>(monitor_.loop(), *this, std::move(our_ends_));
    client_->send(frame::kStarted, fmt::format(R"({{"pid":{}}})", pid_));
    client_->pause_input(false);
  } else {
    our_ends_ = ProcessStdio{};
  }
  // A client gone before the process started leaves nobody to see it: it does not run on.
  if (timed_out_ || !client_ || !monitor_.container_running()) ::kill(pid_, SIGKILL);
  if (auto st = monitor_.claim_unclaimed(pid_)) process_exited(*st);
}

void ExecSession::process_exited(int status) {
  status_ = status;
  drain_until_ = monotonic_ms() + kExecDrainGraceMs;
  if (stdio_) stdio_->drain_now(); // may complete the session (on_outputs_closed)
  maybe_complete();
}

void ExecSession::maybe_complete() {
  if (done_ || !status_) return;
  bool forced = monotonic_ms() >= drain_until_;
  if (!forced && client_ && ((stdio_ && stdio_->outputs_open()) || !pending_frame_.empty())) return;
  if (client_) {
    int code = WIFSIGNALED(*status_) ? 128 + WTERMSIG(*status_) : WEXITSTATUS(*status_);
    int sig = WIFSIGNALED(*status_) ? WTERMSIG(*status_) : 0;
    client_->exec = nullptr;
    client_->finish(frame::kExit, fmt::format(R"({{"exit_code":{},"signal":{},"timed_out":{}}})", code, sig,
                                              timed_out_ ? "true" : "false"));
    client_ = nullptr;
  }
  close_stdio();
  done_ = true;
}

int64_t ExecSession::deadline() const {
  if (done_) return 0;
  if (status_) return drain_until_;
  return timed_out_ ? 0 : timeout_at_;
}

void ExecSession::on_deadline(int64_t now) {
  if (done_) return;
  if (!status_ && timeout_at_ && !timed_out_ && now >= timeout_at_) {
    // ExecSync's timeout: the process is killed and the client told so.
    timed_out_ = true;
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    else if (runtime_) ::kill(runtime_.pid(), SIGKILL);
  }
  if (status_ && now >= drain_until_) maybe_complete();
}

void ExecSession::container_exited() {
  if (pid_ > 0 && !status_) ::kill(pid_, SIGKILL);
}

void ExecSession::force_finish() {
  if (done_) return;
  if (status_) {
    drain_until_ = 0;
    maybe_complete();
    return;
  }
  if (client_) {
    client_->exec = nullptr;
    client_->finish(frame::kFailed, "the container exited before the exec process was reaped");
    client_ = nullptr;
  }
  close_stdio();
  done_ = true;
}

void ExecSession::client_gone() {
  client_ = nullptr;
  pending_frame_.clear();
  // An exec lives as long as its client (berthd's stream session or ExecSync call): a
  // client that vanished (a dropped connection, a killed kubectl) leaves no process
  // behind, as containerd kills its exec then. It is still reaped. Until the runtime has
  // reported the pid, runtime_exited() does it.
  if (pid_ > 0 && !status_) ::kill(pid_, SIGKILL);
  close_stdio();
  our_ends_ = ProcessStdio{};
  if (!runtime_ && pid_ <= 0) done_ = true;
  maybe_complete();
}

void ExecSession::client_writable() {
  if (!client_ || pending_frame_.empty()) return;
  if (!client_->send(pending_frame_[0], std::string_view(pending_frame_).substr(1))) return;
  pending_frame_.clear();
  client_->want_writable(false);
  if (stdio_) stdio_->pause_output(false);
  maybe_complete();
}

void ExecSession::client_stdin(std::string_view data) {
  if (stdio_ && !stdio_->write_stdin(data) && client_) client_->pause_input(true);
}

void ExecSession::client_close_stdin() {
  if (stdio_) stdio_->close_stdin();
}

void ExecSession::client_resize(std::string_view payload) {
  auto [rows, cols] = StdioPump::parse_size(payload);
  if (stdio_) stdio_->resize(rows, cols);
}

void ExecSession::on_output(Stream stream, std::string_view data) {
  if (!client_) return;
  char type = stream == Stream::out ? frame::kStdout : frame::kStderr;
  if (client_->send(type, data)) return;
  // Backpressure: the exec's output waits for its client (only this process slows).
  pending_frame_.assign(1, type);
  pending_frame_.append(data);
  if (stdio_) stdio_->pause_output(true);
  client_->want_writable(true);
}

void ExecSession::on_outputs_closed() { maybe_complete(); }

void ExecSession::on_stdin_drained() {
  if (client_) client_->pause_input(false);
}

} // namespace berth::shim
