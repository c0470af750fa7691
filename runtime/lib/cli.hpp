// runc-compatible command-line parsing for `berth`.
//
// Reproduces runc 1.1 exactly, i.e. urfave/cli v1.22.1 on top of Go's flag package:
//  - Global flags come before the subcommand. Every flag accepts `--flag value`,
//    `--flag=value`, `-flag value` and `-flag=value`; short aliases (`-b`) likewise.
//    Grouped short booleans like `-dt` are NOT accepted, as in runc.
//  - Bool flags take no separate value: `--flag` or `--flag=true|false` (`--flag false`
//    makes "false" a positional argument).
//  - Subcommand flags may also follow positional arguments: urfave moves every
//    `-x` argument (and the non-dash word after it) in front before parsing, so
//    `berth delete ctr --force` works as in runc. exec and ps skip that step: their
//    flags stop at the first positional, and what follows (`ls -l`) is kept verbatim.
//  - `--` ends flag parsing.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::cli {

struct GlobalOptions {
  std::string root;            // --root; empty = default (/run/berth, or $XDG_RUNTIME_DIR/berth rootless)
  std::string log;             // --log
  std::string log_format = "text"; // --log-format text|json
  bool debug = false;          // --debug
  bool systemd_cgroup = false; // --systemd-cgroup
  std::string cgroup_manager;  // --cgroup-manager cgroupfs|systemd|disabled (crun compatible); empty = not given
  std::string rootless = "auto"; // --rootless, normalised to true|false|auto
  bool allow_unenforced_limits = false; // --allow-unenforced-limits
};

struct Command {
  GlobalOptions global;
  std::string name;            // canonical subcommand ("delete" for `rm`); empty with --version/--help alone
  bool show_version = false;   // --version / -v before any subcommand
  bool show_help = false;      // --help / -h (global or per command), `berth help [cmd]`, or no command at all
  // Flag values by canonical long name (without dashes); booleans hold "true"/"false".
  // Repeatable flags (--env, --cap, --additional-gids...) keep every value.
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> args; // positional arguments

  bool has(const std::string& flag) const;           // given at least once
  bool boolean(const std::string& flag) const;       // bool flag value (false when absent)
  std::string value(const std::string& flag, const std::string& def = "") const; // last value
  std::vector<std::string> values(const std::string& flag) const;
  // Integer value (Go syntax: 42, -1, 0x1f, 0o17, 0b101); an unparsable value throws
  // Error naming the flag.
  long long integer(const std::string& flag, long long def) const;
  // Go duration value ("5s", "1m30s", "500ms"); an unparsable value throws Error.
  std::chrono::nanoseconds duration(const std::string& flag, std::chrono::nanoseconds def) const;
};

// Parses argv. Unknown commands or flags, missing flag values and bad booleans throw
// berth::Error with runc's text (`flag provided but not defined: -foo`,
// `flag needs an argument: -pid-file`, `No help topic for 'foo'`). runc prints
// "Incorrect Usage." plus the usage for flag errors and exits 1; for an unknown
// command it exits 3 — that is the caller's business.
Command parse(int argc, char** argv);

// Checks the positional argument count the way runc's commands do, throwing
// e.g. `berth: "start" requires exactly 1 argument(s)`. Call it after handling
// show_help/show_version.
void check_args(const Command& command);

// Usage text: overall (empty command) or for one subcommand (aliases accepted).
// An unknown command throws `No help topic for '<name>'`.
std::string usage(const std::string& command);

// Every subcommand name, in `berth --help` order (the built-in `help` is not included).
std::vector<std::string> command_names();

} // namespace berth::cli
