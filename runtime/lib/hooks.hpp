// OCI hooks: parsed from config.json, run with the container state on stdin.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth {

struct Hook {
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::optional<int> timeout; // seconds; must be > 0 when set
};

struct Hooks {
  std::vector<Hook> prestart, create_runtime, create_container, start_container, poststart, poststop;
  bool empty() const {
    return prestart.empty() && create_runtime.empty() && create_container.empty() &&
           start_container.empty() && poststart.empty() && poststop.empty();
  }
};

// Parses the top-level "hooks" object (absent: no hooks); paths must be absolute.
// Errors name the field: `hooks.poststart[0].path: must be an absolute path`.
Hooks parse_hooks(const JsonView& hooks);

// Runs each hook in order (fork+exec, state JSON on stdin, stdout/stderr captured).
// A hook that exits non-zero, is killed, or outlives its timeout throws an Error
// naming the stage and hook, indexed from 0 like runc and the config field:
// `createRuntime hook #0 (/bin/false): exit status 1: <stderr>`. Safe to call in the
// container's init before or after pivot_root: it needs only fork/exec/pipe/poll.
void run_hooks(const std::vector<Hook>& hooks, const char* stage, const std::string& state_json);

// For poststart and poststop, where the spec says a failing hook is a warning and
// the remaining hooks and the lifecycle continue: runs every hook, logs failures.
void run_hooks_warn(const std::vector<Hook>& hooks, const char* stage, const std::string& state_json);

} // namespace berth
