// What the shim keeps on disk and speaks on its sockets (docs/shim.md has the full
// description). Everything a later caller needs to find a shim again is here.
#pragma once

#include <cstddef>
#include <string>

#include "common/fs.hpp"

namespace berth::shim {

// <state-root>/<id>/ holds the running shim's files; <exit-dir>/<id> outlives it.
struct ContainerPaths {
  ContainerPaths(const std::string& state_root, const std::string& exit_dir_or_empty, const std::string& id)
      : dir(path_join(state_root, id)),
        exit_dir(exit_dir_or_empty.empty() ? path_join(state_root, "exits") : exit_dir_or_empty),
        exit_file(path_join(exit_dir, id)) {}

  std::string dir;       // 0700, created by the shim, removed when it exits
  std::string exit_dir;
  std::string exit_file; // {"exit_code","signal","oom_killed","exited_at"}
  std::string file(const char* name) const { return path_join(dir, name); }
  std::string shim_pid() const { return file("shim.pid"); }          // the shim's pid
  std::string container_pid() const { return file("container.pid"); } // runtime --pid-file
  std::string ctl_socket() const { return file("ctl.sock"); }       // SOCK_STREAM, text lines
  std::string attach_socket() const { return file("attach.sock"); } // SOCK_SEQPACKET, frames
  std::string console_socket() const { return file("console.sock"); }
  std::string runtime_log() const { return file("runtime.log"); }
};

// ---- ctl.sock: one request line, one JSON response line -----------------------
//   state | wait | reopen-log | resize ROWS COLS | close-stdin
inline constexpr size_t kMaxCtlLine = 256;

// ---- attach.sock: SOCK_SEQPACKET, each message = 1 type byte + payload ----------
namespace frame {
// client -> shim
inline constexpr char kAttach = 'a';     // first message: attach to the container's stdio
                                         // (payload: {"stdin":bool,"tty":bool} or empty)
inline constexpr char kExec = 'x';       // first message: run a process (payload: JSON request)
inline constexpr char kStdin = 'i';      // bytes for stdin
inline constexpr char kCloseStdin = 'c'; // end of stdin
inline constexpr char kResize = 'w';     // payload "ROWS COLS"
// shim -> client
inline constexpr char kStarted = 's';    // payload JSON: {"pid":N} (exec) or {"status":"running"} (attach)
inline constexpr char kStdout = 'o';
inline constexpr char kStderr = 'e';
inline constexpr char kFailed = 'f';     // payload: error text; the shim closes the connection
inline constexpr char kExit = 'q';       // payload JSON exit status; the shim closes the connection
inline constexpr size_t kMaxPayload = 32768;
} // namespace frame

} // namespace berth::shim
