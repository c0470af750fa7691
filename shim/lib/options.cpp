#include "shim/lib/options.hpp"

#include <cstring>
#include <functional>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::shim {

namespace {

const char* const kClientCommands[] = {"state", "wait", "reopen-log", "resize", "close-stdin", "attach", "exec"};

bool is_client_command(std::string_view s) {
  for (auto* c : kClientCommands)
    if (s == c) return true;
  return false;
}

// One option: its names, whether it takes a value, and what to do with it.
struct Option {
  const char* name;
  char short_name;
  bool takes_value;
  std::function<void(const std::string&)> set;
};

// Parses "--name value", "--name=value", "-n value" and flags; stops at "--" (the
// rest is positional) and collects other words as positionals.
std::vector<std::string> parse_options(int argc, char** argv, int first, const std::vector<Option>& options) {
  std::vector<std::string> positional;
  for (int i = first; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (i++; i < argc; i++) positional.emplace_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    std::string name, value;
    bool has_value = false;
    const Option* opt = nullptr;
    if (arg[1] == '-') {
      auto eq = arg.find('=');
      name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        has_value = true;
      }
      for (auto& o : options)
        if (name == o.name) opt = &o;
    } else if (arg.size() == 2) {
      name = arg.substr(1);
      for (auto& o : options)
        if (o.short_name == arg[1]) opt = &o;
    }
    if (!opt) fail("unknown option {}", arg);
    if (opt->takes_value) {
      if (!has_value) {
        if (i + 1 >= argc) fail("option {} needs a value", arg);
        value = argv[++i];
      }
    } else if (has_value) {
      fail("option --{} takes no value", opt->name);
    }
    opt->set(value);
  }
  return positional;
}

int parse_seconds(const std::string& s, const char* what) {
  auto v = parse_int(s);
  if (!v || *v < 0 || *v > 86400 * 365) fail("{}: expected seconds, got \"{}\"", what, s);
  return static_cast<int>(*v);
}

} // namespace

void validate_container_id(const std::string& id) {
  if (id.empty()) fail("container id must not be empty");
  if (id.size() > 128) fail("container id is longer than 128 bytes");
  for (size_t i = 0; i < id.size(); i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '_' || c == '.' || c == '-'));
    if (!ok) fail("invalid container id \"{}\": use letters, digits, '_', '.', '-'", id);
  }
}

CommandLine parse_command_line(int argc, char** argv) {
  CommandLine cl;
  int first = 1;
  if (argc > 1) {
    std::string_view cmd = argv[1];
    if (cmd == "run") {
      first = 2;
    } else if (is_client_command(cmd)) {
      cl.kind = CommandLine::Kind::client;
      cl.client.command = cmd;
      first = 2;
    } else if (cmd == "help") {
      cl.kind = CommandLine::Kind::help;
      return cl;
    }
  }

  bool help = false, version = false;
  auto flag = [](bool& b) { return [&b](const std::string&) { b = true; }; };
  std::vector<Option> common = {
      {"help", 'h', false, flag(help)},
      {"version", 'v', false, flag(version)},
  };

  if (cl.kind == CommandLine::Kind::client) {
    auto& c = cl.client;
    auto options = common;
    options.insert(options.end(), {
        {"state-dir", 0, true, [&](const std::string& v) { c.state_root = v; }},
        {"exit-dir", 0, true, [&](const std::string& v) { c.exit_dir = v; }},
        {"tty", 't', false, flag(c.tty)},
        {"stdin", 'i', false, flag(c.stdin_open)},
        {"timeout", 0, true, [&](const std::string& v) { c.timeout_s = parse_seconds(v, "--timeout"); }},
        {"process", 'p', true, [&](const std::string& v) { c.process_file = v; }},
    });
    auto pos = parse_options(argc, argv, first, options);
    if (help) {
      cl.kind = CommandLine::Kind::help;
      return cl;
    }
    if (pos.empty()) fail("{}: missing the container id", c.command);
    c.id = pos[0];
    c.args.assign(pos.begin() + 1, pos.end());
    validate_container_id(c.id);
    if (c.command == "resize" && c.args.size() != 2) fail("resize: expected ROWS COLS");
    if (c.command == "exec" && c.args.empty() && c.process_file.empty())
      fail("exec: give a command or --process FILE");
    if (c.command != "exec" && c.command != "resize" && !c.args.empty())
      fail("{}: unexpected argument \"{}\"", c.command, c.args[0]);
    return cl;
  }

  auto& s = cl.shim;
  auto options = common;
  options.insert(options.end(), {
      {"id", 0, true, [&](const std::string& v) { s.id = v; }},
      {"bundle", 'b', true, [&](const std::string& v) { s.bundle = v; }},
      {"runtime", 'r', true, [&](const std::string& v) { s.runtime = v; }},
      {"runtime-arg", 0, true, [&](const std::string& v) { s.runtime_args.push_back(v); }},
      {"state-dir", 0, true, [&](const std::string& v) { s.state_root = v; }},
      {"exit-dir", 0, true, [&](const std::string& v) { s.exit_dir = v; }},
      {"log-path", 'l', true, [&](const std::string& v) { s.log_path = v; }},
      {"log-max-line", 0, true,
       [&](const std::string& v) {
         auto n = parse_uint(v);
         if (!n || *n < 64 || *n > (1u << 20)) fail("--log-max-line: expected 64..1048576, got \"{}\"", v);
         s.log_max_line = *n;
       }},
      {"stdin", 'i', false, flag(s.stdin_pipe)},
      {"stdin-once", 0, false, flag(s.stdin_once)},
      {"start", 0, false, flag(s.start)},
      {"delete", 0, false, flag(s.delete_after)},
      {"foreground", 0, false, flag(s.foreground)},
      {"timeout", 0, true, [&](const std::string& v) { s.timeout_s = parse_seconds(v, "--timeout"); }},
      {"memory-events", 0, true, [&](const std::string& v) { s.memory_events = v; }},
      {"shim-log", 0, true, [&](const std::string& v) { s.shim_log = v; }},
      {"shim-log-fd", 0, true,
       [&](const std::string& v) {
         auto n = parse_uint(v);
         if (!n || *n < 3 || *n > 1023) fail("--shim-log-fd: expected an inherited fd 3..1023, got \"{}\"", v);
         s.shim_log_fd = static_cast<int>(*n);
       }},
      {"log-format", 0, true,
       [&](const std::string& v) {
         auto f = dlog::parse_format(v);
         if (!f) fail("--log-format: expected text or json, got \"{}\"", v);
         s.log_format = *f;
       }},
  });
  auto pos = parse_options(argc, argv, first, options);
  if (help) {
    cl.kind = CommandLine::Kind::help;
    return cl;
  }
  if (version) {
    cl.kind = CommandLine::Kind::version;
    return cl;
  }
  if (!pos.empty()) fail("unexpected argument \"{}\"", pos[0]);
  if (s.id.empty()) fail("missing --id");
  if (s.bundle.empty()) fail("missing --bundle");
  validate_container_id(s.id);
  if (s.stdin_once) s.stdin_pipe = true;
  if (s.timeout_s == 0) s.timeout_s = 120;
  return cl;
}

const char* usage_text() {
  return R"(berth-shim - per-container monitor: stdio, CRI log, exit status

USAGE:
  berth-shim [run] --id ID --bundle DIR [options]     start a shim for a new container
  berth-shim state       [--state-dir D] [--exit-dir E] ID
  berth-shim wait        [--state-dir D] [--exit-dir E] ID
  berth-shim reopen-log  [--state-dir D] ID
  berth-shim resize      [--state-dir D] ID ROWS COLS
  berth-shim close-stdin [--state-dir D] ID
  berth-shim attach      [--state-dir D] ID
  berth-shim exec        [--state-dir D] [-t] [-i] [--timeout S] [--process FILE] ID [-- ARGS...]

RUN OPTIONS:
  --id ID               container id (also the runtime's)
  --bundle, -b DIR      OCI bundle (config.json)
  --runtime, -r PATH    runtime binary with runc's CLI (default: berth from PATH)
  --runtime-arg ARG     global runtime flag, repeatable (e.g. --runtime-arg=--root --runtime-arg=/run/x)
  --state-dir DIR       shim state root; this container's files are in DIR/ID (default /run/berth-shim)
  --exit-dir DIR        exit file DIR/ID (default: <state-dir>/exits)
  --log-path, -l FILE   CRI container log (default: none)
  --log-max-line N      longer lines are split into partial records (default 16384)
  --stdin, -i           give the container a stdin pipe (fed by attach clients)
  --stdin-once          close stdin when the first attach client detaches (implies --stdin)
  --start               start the container after creating it
  --delete              run `runtime delete` after the container exited
  --timeout SECONDS     limit for each runtime call of create/start/delete (default 120)
  --memory-events FILE  watch FILE instead of the cgroup's memory.events
  --shim-log FILE       append the shim's own diagnostics to FILE (default: discard them)
  --shim-log-fd N       or write them to inherited fd N (berthd passes its own stderr,
                        its journal stream under systemd)
  --log-format text|json  those lines as berthd's and berthlet's: logfmt or JSON (default text)
  --foreground          do not detach

On success `run` prints {"pid":N,"shim_pid":M} and exits 0 while the shim serves
the container in the background; on failure it prints the error (the runtime's
message when the runtime failed) on stderr and exits 1. See berth-shim(8).
)";
}

} // namespace berth::shim
