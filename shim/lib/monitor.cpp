#include "shim/lib/monitor.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"
#include "shim/lib/unix_socket.hpp"

namespace berth::shim {

namespace {
// After the init exits, how long the shim waits for the last writers of its pipes
// (processes outside a pid namespace can outlive it) before it records the exit.
constexpr int64_t kDrainGraceMs = 1000;
// Connections beyond this are closed at once: a runaway client cannot eat the shim.
constexpr size_t kMaxClients = 64;
// Reaped pids kept for exec sessions whose runtime call has not returned yet.
constexpr size_t kMaxUnclaimed = 64;

json ok_response() { return json{{"ok", true}}; }
// Replies may quote a request or a path, which can hold any bytes: invalid UTF-8 is
// replaced (U+FFFD) instead of making the JSON writer throw.
std::string reply_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string error_response(std::string_view msg) { return reply_text(json{{"ok", false}, {"error", msg}}); }
} // namespace

int64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

namespace {
std::string g_note_container;
}

void set_note_container(std::string id) { g_note_container = std::move(id); }

void note(std::string_view message, dlog::Level level) {
  dlog::write(level, message, {{"component", "berth-shim"}, {"container", g_note_container}});
}

Monitor::Monitor(const ShimOptions& opts, ContainerPaths paths)
    : opts_(opts), paths_(std::move(paths)), runtime_(resolve_executable(opts.runtime)) {
  // Signals arrive through the loop; the runtime and exec children get them back
  // unblocked (spawn_process resets mask and dispositions).
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&set, sig);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0) fail_errno("block signals");
  ::signal(SIGPIPE, SIG_IGN);
  signals_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signals_) fail_errno("signalfd");
}

Monitor::~Monitor() = default;

// ---- create -------------------------------------------------------------------

namespace {

bool config_wants_terminal(const std::string& bundle) {
  auto path = path_join(bundle, "config.json");
  json config;
  try {
    config = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("{}: {}", path, e.what());
  }
  JsonView v(config, "config.json");
  return v["process"].opt_bool("terminal").value_or(false);
}

struct Pipe {
  UniqueFd read, write;
};
Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) fail_errno("pipe");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}
void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

pid_t read_pid_file(const std::string& path) {
  auto text = try_read_file(path);
  if (!text) fail("the runtime wrote no pid file {}", path);
  auto pid = parse_int(trim(*text));
  if (!pid || *pid <= 0) fail("pid file {}: not a pid: \"{}\"", path, *text);
  return static_cast<pid_t>(*pid);
}

} // namespace

void Monitor::open_listeners() {
  ctl_listener_ = listen_unix(paths_.ctl_socket(), SOCK_STREAM);
  attach_listener_ = listen_unix(paths_.attach_socket(), SOCK_SEQPACKET);
  loop_.add(ctl_listener_.get(), EPOLLIN, &ctl_watch_);
  loop_.add(attach_listener_.get(), EPOLLIN, &attach_watch_);
}

pid_t Monitor::create_container() {
  terminal_ = config_wants_terminal(opts_.bundle);
  if (!opts_.log_path.empty()) {
    log_ = std::make_unique<LogFile>(opts_.log_path);
    writer_ = std::make_unique<RecordWriter>(*log_);
    out_lines_ = std::make_unique<LineSplitter>(Stream::out, opts_.log_max_line);
    err_lines_ = std::make_unique<LineSplitter>(Stream::err, opts_.log_max_line);
  }
  // The sockets exist before the container does: a caller may attach before start.
  open_listeners();

  ProcessStdio ours;
  Pipe out, err, in, capture;
  UniqueFd console_listener;
  Stdio child;
  std::vector<std::string> args{"create", "--bundle", opts_.bundle, "--pid-file", paths_.container_pid()};
  if (terminal_) {
    console_listener = listen_unix(paths_.console_socket(), SOCK_STREAM);
    args.insert(args.end(), {"--console-socket", paths_.console_socket()});
    capture = make_pipe();
    set_nonblocking(capture.read.get());
    child.out = child.err = capture.write.get();
  } else {
    // The runtime's stdio becomes the container's: its own messages share the pipes,
    // and what is in them when create returns is the runtime's (the container has
    // not run yet).
    out = make_pipe();
    err = make_pipe();
    set_nonblocking(out.read.get());
    set_nonblocking(err.read.get());
    child.out = out.write.get();
    child.err = err.write.get();
    if (opts_.stdin_pipe) {
      in = make_pipe();
      child.in = in.read.get();
    }
  }
  args.push_back(opts_.id);
  ::unlink(paths_.runtime_log().c_str());
  auto argv = runtime_argv(runtime_, opts_.runtime_args, paths_.runtime_log(), args);
  int timeout_ms = opts_.timeout_s * 1000;
  RunResult r = terminal_ ? run_process(argv, child, opts_.bundle, timeout_ms, {capture.read.get()})
                          : run_process(argv, child, opts_.bundle, timeout_ms, {out.read.get(), err.read.get()});
  // Only the container holds the child ends now.
  out.write.reset();
  err.write.reset();
  in.read.reset();
  capture.write.reset();
  if (r.timed_out || !WIFEXITED(r.wait_status) || WEXITSTATUS(r.wait_status) != 0)
    throw Error(0, describe_runtime_failure("runtime create", r, paths_.runtime_log()));
  if (!trim(r.output).empty()) note(fmt::format("runtime create said: {}", trim(r.output)), dlog::Level::warn);

  try {
    if (terminal_) {
      UniqueFd conn = accept_connection(console_listener.get());
      if (!conn) fail("the runtime did not send the pty master to the console socket");
      ours.tty = true;
      ours.out = recv_fd(conn.get());
      console_listener.reset();
      ::unlink(paths_.console_socket().c_str());
    } else {
      ours.out = std::move(out.read);
      ours.err = std::move(err.read);
      ours.in = std::move(in.write);
    }
    pid_ = read_pid_file(paths_.container_pid());
    stdio_ = std::make_unique<StdioPump>(loop_, *this, std::move(ours));
    oom_ = OomWatch(opts_.memory_events.empty() ? find_oom_counter_file(pid_) : opts_.memory_events);
    if (oom_.fd() >= 0) loop_.add(oom_.fd(), EPOLLIN, &oom_watch_);

    if (opts_.start) {
      Pipe start_out = make_pipe();
      set_nonblocking(start_out.read.get());
      ::unlink(paths_.runtime_log().c_str());
      RunResult s = run_process(runtime_argv(runtime_, opts_.runtime_args, paths_.runtime_log(), {"start", opts_.id}),
                                Stdio{-1, start_out.write.get(), start_out.write.get()}, opts_.bundle, timeout_ms,
                                {start_out.read.get()});
      if (s.timed_out || !WIFEXITED(s.wait_status) || WEXITSTATUS(s.wait_status) != 0)
        throw Error(0, describe_runtime_failure("runtime start", s, paths_.runtime_log()));
    }
  } catch (const Error&) {
    // Created but unusable: take the container away again so that nothing is left.
    run_delete();
    throw;
  }
  return pid_;
}

void Monitor::run_delete() {
  ::unlink(paths_.runtime_log().c_str());
  auto argv = runtime_argv(runtime_, opts_.runtime_args, paths_.runtime_log(), {"delete", "--force", opts_.id});
  try {
    RunResult r = run_process(argv, Stdio{}, opts_.bundle, opts_.timeout_s * 1000);
    if (r.timed_out || r.wait_status != 0) note(describe_runtime_failure("runtime delete", r, paths_.runtime_log()), dlog::Level::warn);
  } catch (const Error& e) {
    note(fmt::format("runtime delete: {}", e.what()), dlog::Level::warn);
  }
}

// ---- serve ------------------------------------------------------------------

int Monitor::serve() {
  loop_.add(signals_.get(), EPOLLIN, &signal_watch_);
  reap_children(); // it may have ended already
  while (!done_) {
    loop_.run_once(next_timeout());
    int64_t now = monotonic_ms();
    for (auto& e : execs_) e->on_deadline(now);
    if (status_ && !done_ && now >= drain_until_) maybe_finish(true);
    sweep();
    if (status_ && !done_) maybe_finish(false);
  }
  return 0;
}

int Monitor::next_timeout() const {
  int64_t next = 0;
  auto consider = [&](int64_t t) {
    if (t > 0 && (next == 0 || t < next)) next = t;
  };
  if (status_ && !done_) consider(drain_until_);
  for (auto& e : execs_) consider(e->deadline());
  if (next == 0) return -1;
  return static_cast<int>(std::clamp<int64_t>(next - monotonic_ms() + 1, 0, 60000));
}

void Monitor::on_event(int tag, uint32_t) {
  switch (tag) {
  case kSignal:
    handle_signals();
    break;
  case kCtlListener:
  case kAttachListener:
    for (;;) {
      UniqueFd conn = accept_connection(tag == kCtlListener ? ctl_listener_.get() : attach_listener_.get());
      if (!conn) break;
      if (ctl_clients_.size() + attach_clients_.size() >= kMaxClients) {
        note("too many clients: connection refused", dlog::Level::warn);
        continue;
      }
      if (tag == kCtlListener) ctl_clients_.push_back(std::make_unique<CtlClient>(*this, std::move(conn)));
      else attach_clients_.push_back(std::make_unique<AttachClient>(*this, std::move(conn)));
    }
    break;
  case kOom: {
    uint64_t before = oom_.kills();
    oom_.refresh();
    if (oom_.kills() != before) note(fmt::format("OOM kill in the container's cgroup ({} so far)", oom_.kills()), dlog::Level::warn);
    break;
  }
  }
}

void Monitor::handle_signals() {
  struct signalfd_siginfo si;
  while (::read(signals_.get(), &si, sizeof si) == sizeof si) {
    int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGCHLD) {
      reap_children();
    } else if (sig != SIGHUP && container_running()) {
      // As conmon: stopping the shim stops its container; the exit is still recorded.
      ::kill(pid_, sig);
    }
  }
}

void Monitor::reap_children() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    if (pid == pid_ && !status_) {
      container_exited(status);
      continue;
    }
    bool claimed = false, spawning = false;
    for (auto& e : execs_) {
      if (!claimed && e->on_reaped(pid, status)) claimed = true;
      spawning = spawning || e->spawning();
    }
    if (!claimed && spawning) {
      if (unclaimed_.size() >= kMaxUnclaimed) unclaimed_.erase(unclaimed_.begin());
      unclaimed_.emplace_back(pid, status);
    }
  }
}

std::optional<int> Monitor::claim_unclaimed(pid_t pid) {
  for (auto it = unclaimed_.begin(); it != unclaimed_.end(); ++it) {
    if (it->first == pid) {
      int status = it->second;
      unclaimed_.erase(it);
      return status;
    }
  }
  return std::nullopt;
}

void Monitor::container_exited(int wait_status) {
  status_ = wait_status;
  clock_gettime(CLOCK_REALTIME, &exited_at_);
  oom_.refresh(); // before anyone can remove the cgroup
  note(fmt::format("container (pid {}) ended: {}", pid_, describe_wait_status(wait_status)));
  for (auto& e : execs_) e->container_exited();
  // The init's own writes are in the pipes already (its fds closed before it became
  // reapable); with a pid namespace every other writer is gone too.
  if (stdio_) stdio_->drain_now();
  drain_until_ = monotonic_ms() + kDrainGraceMs;
  maybe_finish(false);
}

void Monitor::maybe_finish(bool deadline_passed) {
  if (!status_ || done_) return;
  bool outputs_done = !stdio_ || !stdio_->outputs_open();
  bool execs_done = std::all_of(execs_.begin(), execs_.end(), [](auto& e) { return e->done(); });
  if (!deadline_passed && !(outputs_done && execs_done)) return;
  if (!outputs_done) note("container output still open after the init exited: closing it", dlog::Level::warn);
  finish();
}

void Monitor::finish() {
  for (auto& e : execs_) e->force_finish();
  if (writer_) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    writer_->begin(Stream::out, now);
    out_lines_->finish(*writer_);
    writer_->begin(Stream::err, now);
    err_lines_->finish(*writer_);
  }
  if (stdio_) stdio_->close_all();
  oom_.refresh();
  ExitStatus status = ExitStatus::from_wait_status(*status_, exited_at_);
  status.oom_killed = oom_.oom_killed();
  // Delete before the exit file: whoever sees the file may reuse the id at once.
  if (opts_.delete_after) run_delete();
  try {
    mkdir_p(paths_.exit_dir, 0700);
    write_exit_file(paths_.exit_file, status);
  } catch (const Error& e) {
    note(fmt::format("cannot write the exit file: {} (the status was {})", e.what(), status.to_json()), dlog::Level::error);
  }
  final_ = status;
  std::string exit_json = status.to_json();
  json reply = json::parse(exit_json);
  reply["ok"] = true;
  for (auto& c : ctl_clients_)
    if (c->waiting && !c->closed()) c->reply(reply.dump());
  for (auto& c : attach_clients_)
    if (c->mode == AttachClient::Mode::attach && !c->closed()) c->finish(frame::kExit, exit_json);
  done_ = true;
}

void Monitor::sweep() {
  auto gone = [](auto& p) { return p->closed(); };
  ctl_clients_.erase(std::remove_if(ctl_clients_.begin(), ctl_clients_.end(), gone), ctl_clients_.end());
  attach_clients_.erase(std::remove_if(attach_clients_.begin(), attach_clients_.end(), gone),
                        attach_clients_.end());
  execs_.erase(std::remove_if(execs_.begin(), execs_.end(), [](auto& e) { return e->done(); }), execs_.end());
}

void Monitor::remove_state() {
  ctl_listener_.reset();
  attach_listener_.reset();
  if (DIR* d = ::opendir(paths_.dir.c_str())) {
    while (auto* ent = ::readdir(d)) {
      std::string name = ent->d_name;
      if (name == "." || name == "..") continue;
      auto path = path_join(paths_.dir, name);
      if (path == paths_.exit_file) continue; // --exit-dir may be the state dir itself
      ::unlink(path.c_str());
    }
    ::closedir(d);
  }
  ::rmdir(paths_.dir.c_str());
}

// ---- container output and stdin ------------------------------------------------

void Monitor::on_output(Stream stream, std::string_view data) {
  if (writer_) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    writer_->begin(stream, now);
    (stream == Stream::out ? out_lines_ : err_lines_)->feed(data, *writer_);
  }
  char type = stream == Stream::out ? frame::kStdout : frame::kStderr;
  for (auto& c : attach_clients_) {
    if (c->mode != AttachClient::Mode::attach || c->closed()) continue;
    // The log and the container never wait for an attach client: one that fell a
    // whole socket buffer behind is dropped.
    if (!c->send(type, data)) {
      note("attach client too slow or gone: disconnected", dlog::Level::warn);
      c->close();
    }
  }
}

void Monitor::on_outputs_closed() { maybe_finish(false); }

void Monitor::on_stdin_drained() {
  for (auto& c : attach_clients_)
    if (c->mode == AttachClient::Mode::attach && c->input_paused) c->pause_input(false);
}

void Monitor::attach(AttachClient& client) {
  client.mode = AttachClient::Mode::attach;
  if (final_) client.finish(frame::kExit, final_->to_json());
  else client.send(frame::kStarted, R"({"status":"running"})");
}

void Monitor::attach_stdin(AttachClient& client, std::string_view data) {
  if (stdio_ && !stdio_->write_stdin(data)) client.pause_input(true);
}

void Monitor::attach_close_stdin() {
  if (stdio_) stdio_->close_stdin();
}

void Monitor::attach_resize(std::string_view payload) {
  auto [rows, cols] = StdioPump::parse_size(payload);
  if (!stdio_) fail("the container's stdio is closed");
  stdio_->resize(rows, cols);
}

void Monitor::attach_client_closed(AttachClient& client) {
  // CRI StdinOnce: the first attach session owns stdin; its end closes it.
  if (client.mode == AttachClient::Mode::attach && client.owns_stdin && opts_.stdin_once && stdio_)
    stdio_->close_stdin();
}

void Monitor::start_exec(AttachClient& client, std::string_view request) {
  if (!container_running()) {
    client.finish(frame::kFailed, "container is not running");
    return;
  }
  auto session = std::make_unique<ExecSession>(*this, client, ++exec_count_);
  try {
    session->start(request);
  } catch (const std::exception& e) { // also the JSON library's errors (config.json)
    client.finish(frame::kFailed, e.what());
    return;
  }
  client.mode = AttachClient::Mode::exec;
  client.exec = session.get();
  // Stdin waits in the socket until the process exists.
  client.pause_input(true);
  execs_.push_back(std::move(session));
}

// ---- ctl ----------------------------------------------------------------------

std::string Monitor::state_json() const {
  json j = ok_response();
  j["id"] = opts_.id;
  j["status"] = final_ ? "stopped" : status_ ? "stopping" : "running";
  j["pid"] = pid_;
  j["shim_pid"] = ::getpid();
  j["terminal"] = terminal_;
  j["stdin"] = stdio_ && stdio_->stdin_open();
  if (log_) {
    j["log_path"] = log_->path();
    j["log_dropped_bytes"] = log_->dropped_bytes();
  }
  j["oom_kills"] = oom_.kills();
  if (final_) {
    j["exit_code"] = final_->exit_code;
    j["signal"] = final_->signal;
    j["oom_killed"] = final_->oom_killed;
    j["exited_at"] = final_->exited_at;
  }
  return reply_text(j);
}

void Monitor::handle_ctl(CtlClient& client, std::string_view line) {
  auto words = split(trim(line), ' ');
  std::string cmd = words.empty() ? "" : words[0];
  try {
    if (cmd == "state" && words.size() == 1) {
      client.reply(state_json());
    } else if (cmd == "wait" && words.size() == 1) {
      if (final_) {
        json reply = json::parse(final_->to_json());
        reply["ok"] = true;
        client.reply(reply.dump());
      } else {
        client.waiting = true;
      }
    } else if (cmd == "reopen-log" && words.size() == 1) {
      if (!log_) fail("the shim has no log file (started without --log-path)");
      log_->reopen();
      client.reply(ok_response().dump());
    } else if (cmd == "resize" && words.size() == 3) {
      attach_resize(fmt::format("{} {}", words[1], words[2]));
      client.reply(ok_response().dump());
    } else if (cmd == "close-stdin" && words.size() == 1) {
      attach_close_stdin();
      client.reply(ok_response().dump());
    } else {
      fail("unknown request \"{}\" (state, wait, reopen-log, resize ROWS COLS, close-stdin)", trim(line));
    }
  } catch (const std::exception& e) {
    client.reply(error_response(e.what()));
  }
}

} // namespace berth::shim
