// runc-compatible command-line parsing for `berth`.
//
// Global flags come before the subcommand, in `--flag value` and `--flag=value`
// forms; subcommand flags follow the subcommand (also `-f value`, `-f=value`, and
// grouped short booleans like `-dt` are NOT accepted, as in runc). Parsing stops at
// the first positional argument for commands whose trailing arguments belong to the
// container process (exec), and at `--`.
#pragma once

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
  std::string cgroup_manager;  // --cgroup-manager cgroupfs|systemd|disabled (crun compatible)
  std::string rootless = "auto"; // --rootless true|false|auto
};

struct Command {
  GlobalOptions global;
  std::string name;            // subcommand, empty with --version/--help alone
  bool show_version = false;   // --version / -v before any subcommand
  bool show_help = false;      // --help / -h (global or per command)
  // Flag values by canonical long name (without dashes); booleans hold "true"/"false".
  // Repeatable flags (--env, --cap, --additional-gids...) keep every value.
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> args; // positional arguments

  bool has(const std::string& flag) const;           // given at least once
  bool boolean(const std::string& flag) const;       // bool flag value (false when absent)
  std::string value(const std::string& flag, const std::string& def = "") const; // last value
  std::vector<std::string> values(const std::string& flag) const;
  // Integer value; an unparsable value throws Error naming the flag.
  long long integer(const std::string& flag, long long def) const;
};

// Parses argv. Unknown commands or flags, missing flag values and bad booleans throw
// berth::Error with runc-like text (e.g. `flag provided but not defined: -foo`).
Command parse(int argc, char** argv);

// Usage text: overall (empty command) or for one subcommand.
std::string usage(const std::string& command);

// Every subcommand name, in `berth --help` order.
std::vector<std::string> command_names();

} // namespace berth::cli
