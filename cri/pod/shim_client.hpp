// berthd's side of berth-shim, through the shim's public interface only: its command
// line (`berth-shim run`), its ctl.sock (one text line each way), its attach.sock
// (SOCK_SEQPACKET frames, shim/lib/protocol.hpp) and the exit files it leaves
// (docs/shim.md). The shim is a separate program; nothing of it is linked in.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth::cri {

struct ShimSettings {
  std::string binary;      // berth-shim
  std::string state_root;  // its --state-dir: <state_dir>/shims
  std::string exit_dir;    // its --exit-dir: <state_dir>/exits
  std::chrono::milliseconds timeout{120000};  // create + start of one container
};

struct ShimRun {
  std::string id;
  std::string bundle;
  std::string runtime;                    // the OCI runtime binary (berth, runc, crun)
  std::vector<std::string> runtime_args;  // its global flags (--root, --systemd-cgroup, ...)
  std::string log_path;                   // CRI log file ("" = none)
  bool stdin_pipe = false, stdin_once = false;
  bool start = true;                      // create, then start
  bool delete_after = true;               // `runtime delete` once the container exited
};

struct ShimStarted {
  int64_t pid = 0;       // the container's init
  int64_t shim_pid = 0;
};

// Runs `berth-shim run ...`; returns once the container is created (and started) or
// throws the shim's error (the runtime's message when the runtime failed). A failed run
// leaves nothing: no shim, no state dir, no exit file.
ShimStarted run_shim(const ShimSettings& shim, const ShimRun& run);

struct ExitRecord {
  int exit_code = 0;  // code, or 128+signal
  int signal = 0;
  bool oom_killed = false;
  int64_t exited_ns = 0;
};
// The exit file <exit_dir>/<id>; nullopt when there is none. Unparsable content is an
// error naming the file.
std::optional<ExitRecord> read_exit_record(const std::string& exit_dir, const std::string& id);
// Parses the exit file's JSON (exposed for tests).
ExitRecord parse_exit_record(const std::string& text, const std::string& origin);

// One ctl.sock request ("state", "reopen-log", "close-stdin", "resize R C"); the reply's
// JSON, or nullopt when no shim answers (gone). A reply with "ok":false throws its error.
std::optional<json> shim_request(const ShimSettings& shim, const std::string& id, const std::string& request,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The shim's attach.sock of `id` (exec and attach sessions, shim/lib/protocol.hpp).
std::string shim_attach_socket(const ShimSettings& shim, const std::string& id);

// True while a shim serves the id (its ctl.sock accepts connections).
bool shim_alive(const ShimSettings& shim, const std::string& id);

struct ExecSyncResult {
  int exit_code = 0;
  bool timed_out = false;
  bool truncated = false;  // output beyond max_output was dropped
  std::string out, err;
};
// Runs argv in the container through the shim's exec session and collects its output
// (stdout and stderr together capped at max_output; the rest is read and dropped). timeout 0: none; past it the shim SIGKILLs the
// process and the result says timed_out.
ExecSyncResult shim_exec_sync(const ShimSettings& shim, const std::string& id, const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout, size_t max_output);

} // namespace berth::cri
