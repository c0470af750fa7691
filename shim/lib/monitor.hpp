// The shim proper: one container, one epoll loop, no threads.
//
// Monitor creates the container through the runtime's CLI, then serves: container
// output to the CRI log and to attach clients, stdin from attach clients, control
// requests on ctl.sock, exec sessions on attach.sock, child reaping (it is a child
// subreaper), OOM counting, and at the end the exit file.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "shim/lib/cri_log.hpp"
#include "shim/lib/event_loop.hpp"
#include "shim/lib/exit_status.hpp"
#include "shim/lib/oom.hpp"
#include "shim/lib/options.hpp"
#include "shim/lib/process.hpp"
#include "shim/lib/protocol.hpp"
#include "shim/lib/stdio_pump.hpp"

namespace berth::shim {

class Monitor;
class ExecSession;

int64_t monotonic_ms();
// The shim's own diagnostics (stderr: --shim-log, or /dev/null).
// The shim's own diagnostics, in the daemons' line format (common/daemon_log) with the
// container's id on every line.
void set_note_container(std::string id);
void note(std::string_view message, dlog::Level level = dlog::Level::info);

// A connection on ctl.sock: request lines in, one JSON line out per request.
class CtlClient final : public EventHandler {
public:
  CtlClient(Monitor& monitor, UniqueFd fd);
  void on_event(int tag, uint32_t events) override;
  void reply(const std::string& json_line);
  void close();
  bool closed() const { return !fd_; }
  bool waiting = false; // a `wait` request waits for the container's end

private:
  void read_requests();
  Monitor& monitor_;
  UniqueFd fd_;
  Watch watch_{this, 0};
  std::string input_;
};

// A connection on attach.sock: an attach client of the container, or the client of
// one exec session.
class AttachClient final : public EventHandler {
public:
  enum class Mode { undecided, attach, exec };
  AttachClient(Monitor& monitor, UniqueFd fd);
  void on_event(int tag, uint32_t events) override;
  // Sends a frame without blocking; false if the client cannot take it now.
  bool send(char type, std::string_view payload);
  // Sends one last frame (best effort) and closes.
  void finish(char type, std::string_view payload);
  void close();
  bool closed() const { return !fd_; }
  void pause_input(bool paused);
  void want_writable(bool on);

  Mode mode = Mode::undecided;
  bool owns_stdin = true;  // attach: its end closes a StdinOnce container's stdin
  ExecSession* exec = nullptr;
  bool input_paused = false;

private:
  void serve_events(uint32_t events);
  void handle_frame(char type, std::string_view payload);
  void update_watch();
  Monitor& monitor_;
  UniqueFd fd_;
  Watch watch_{this, 0};
  bool want_writable_ = false;
};

// One `runtime exec --detach` process and its client.
class ExecSession final : public StdioPump::Sink {
public:
  ExecSession(Monitor& monitor, AttachClient& client, int number);
  ~ExecSession();
  // Parses the request, writes the process file and runs `runtime exec`. Throws.
  void start(std::string_view request);
  // A child was reaped; true if it was this session's.
  bool on_reaped(pid_t pid, int status);
  void on_deadline(int64_t now);
  int64_t deadline() const;
  void client_gone();
  void client_writable();
  void client_stdin(std::string_view data);
  void client_close_stdin();
  void client_resize(std::string_view payload);
  void container_exited();
  void force_finish();
  bool done() const { return done_; }
  bool spawning() const { return static_cast<bool>(runtime_); }

  void on_output(Stream stream, std::string_view data) override;
  void on_outputs_closed() override;
  void on_stdin_drained() override;

private:
  void runtime_exited(int status);
  void process_exited(int status);
  void maybe_complete();
  void close_stdio();
  std::string file(const char* suffix) const;

  Monitor& monitor_;
  AttachClient* client_;
  int number_;
  bool tty_ = false;
  bool want_stdin_ = false;
  Child runtime_;
  ProcessStdio child_ends_; // the process's ends of the pipes, held until the runtime exits
  ProcessStdio our_ends_;
  UniqueFd console_;
  std::unique_ptr<StdioPump> stdio_;
  pid_t pid_ = -1;
  std::optional<int> status_;
  bool timed_out_ = false;
  int64_t timeout_at_ = 0;
  int64_t drain_until_ = 0;
  std::string pending_frame_; // an output frame the client could not take yet
  bool done_ = false;
};

class Monitor final : public EventHandler, public StdioPump::Sink {
public:
  Monitor(const ShimOptions& opts, ContainerPaths paths);
  ~Monitor();

  // Creates (and with --start starts) the container; returns its pid. Throws with the
  // runtime's message when it fails; nothing of the container is left then.
  pid_t create_container();
  // Serves until the container's end is recorded. Returns the shim's exit code.
  int serve();
  // Removes the state dir (after serve, or after a failed create).
  void remove_state();

  // ---- used by clients and sessions -----------------------------------------
  void handle_ctl(CtlClient& client, std::string_view line);
  void attach(AttachClient& client);
  void attach_stdin(AttachClient& client, std::string_view data);
  void attach_close_stdin();
  void attach_resize(std::string_view payload);
  void attach_client_closed(AttachClient& client);
  void start_exec(AttachClient& client, std::string_view request);

  const ShimOptions& options() const { return opts_; }
  const ContainerPaths& paths() const { return paths_; }
  EventLoop& loop() { return loop_; }
  bool container_running() const { return pid_ > 0 && !status_; }
  // A reaped pid nobody knew yet (an exec's process that ended before its runtime
  // call returned): the session claims it once it has read the pid file.
  std::optional<int> claim_unclaimed(pid_t pid);

  void on_event(int tag, uint32_t events) override;
  void on_output(Stream stream, std::string_view data) override;
  void on_outputs_closed() override;
  void on_stdin_drained() override;

private:
  enum Tag { kSignal, kCtlListener, kAttachListener, kOom };
  void open_listeners();
  void handle_signals();
  void reap_children();
  void container_exited(int wait_status);
  void maybe_finish(bool deadline_passed);
  void finish();
  void run_delete();
  int next_timeout() const;
  void sweep();
  std::string state_json() const;

  const ShimOptions& opts_;
  ContainerPaths paths_;
  std::string runtime_;
  EventLoop loop_;
  UniqueFd signals_, ctl_listener_, attach_listener_;
  Watch signal_watch_{this, kSignal}, ctl_watch_{this, kCtlListener}, attach_watch_{this, kAttachListener},
      oom_watch_{this, kOom};
  std::unique_ptr<StdioPump> stdio_;
  std::unique_ptr<LogFile> log_;
  std::unique_ptr<RecordWriter> writer_;
  std::unique_ptr<LineSplitter> out_lines_, err_lines_;
  OomWatch oom_;
  bool terminal_ = false;

  pid_t pid_ = -1;
  std::optional<int> status_; // wait status once the init was reaped
  struct timespec exited_at_ {};
  int64_t drain_until_ = 0;
  std::optional<ExitStatus> final_;
  bool done_ = false;

  std::vector<std::unique_ptr<CtlClient>> ctl_clients_;
  std::vector<std::unique_ptr<AttachClient>> attach_clients_;
  std::vector<std::unique_ptr<ExecSession>> execs_;
  std::vector<std::pair<pid_t, int>> unclaimed_;
  int exec_count_ = 0;
};

} // namespace berth::shim
