// berth-shim's command line: the monitor (`berth-shim [run] ...`) and the client
// subcommands a caller or a shell uses to talk to a running shim.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/daemon_log.hpp"

namespace berth::shim {

inline constexpr const char* kDefaultStateRoot = "/run/berth-shim";

struct ShimOptions {
  std::string id;
  std::string bundle;
  std::string runtime = "berth";           // a path, or a name looked up in PATH
  std::vector<std::string> runtime_args;   // global flags for every runtime call (e.g. --root X)
  std::string state_root = kDefaultStateRoot;
  std::string exit_dir;                    // empty: <state_root>/exits
  std::string log_path;                    // empty: output goes to attach clients only
  size_t log_max_line = 16384;             // CRI: longer lines become partial (P) records
  bool stdin_pipe = false;
  bool stdin_once = false;
  bool start = false;                      // create, then start (for use from a shell)
  bool delete_after = false;               // `runtime delete` once the container has exited
  bool foreground = false;                 // do not detach (debugging, supervisors)
  int timeout_s = 120;                     // for the runtime's create/start/delete
  std::string memory_events;               // override of the cgroup's memory.events
  std::string shim_log;                    // the shim's own diagnostics (default: none)
  int shim_log_fd = -1;                    // or an inherited fd for them (berthd's stderr)
  dlog::Format log_format = dlog::Format::text; // of those diagnostics: the daemons' line format
};

// `berth-shim state|wait|reopen-log|resize|close-stdin|attach|exec ...`
struct ClientOptions {
  std::string command;
  std::string state_root = kDefaultStateRoot;
  std::string exit_dir;
  std::string id;
  std::vector<std::string> args;  // command arguments (resize: rows cols; exec: argv)
  bool tty = false;
  bool stdin_open = false;
  double timeout_s = 0;
  std::string process_file;       // exec --process FILE (an OCI process JSON)
};

struct CommandLine {
  enum class Kind { run, client, help, version } kind = Kind::run;
  ShimOptions shim;
  ClientOptions client;
};

// Throws berth::Error with a usage message on bad input.
CommandLine parse_command_line(int argc, char** argv);
const char* usage_text();

// Container ids become file names: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 bytes.
void validate_container_id(const std::string& id);

} // namespace berth::shim
