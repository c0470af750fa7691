// berth: an OCI runtime with runc's command line. This file only dispatches;
// the work happens in runtime/lib.
#include <seccomp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/version.hpp"
#include "runtime/lib/capabilities.hpp"
#include "runtime/lib/cgroup.hpp"
#include "runtime/lib/cli.hpp"
#include "runtime/lib/container.hpp"
#include "runtime/lib/exec.hpp"
#include "runtime/lib/features.hpp"
#include "runtime/lib/launch.hpp"
#include "runtime/lib/spec_template.hpp"
#include "runtime/lib/state.hpp"

using namespace berth;

namespace {

// An exec that could not start its process: exit status 255, as runc.
struct ExecFailure : Error {
  explicit ExecFailure(Error e) : Error(std::move(e)) {}
};

void print(const std::string& s) { write_all(STDOUT_FILENO, s); }

// runc's shouldUseRootlessCgroupManager: "auto" is true for a non-root user and for
// root in a user namespace (where it cannot know whether the cgroup is delegated).
bool rootless_cgroups(const std::string& mode) {
  if (mode == "true") return true;
  if (mode == "false") return false;
  return ::geteuid() != 0 || in_user_namespace();
}

// The environment's opt-in, for callers that cannot pass flags (containerd's runc
// options have none; its shims pass their environment on).
bool env_allows_unenforced_limits() {
  const char* v = ::getenv("BERTH_ALLOW_UNENFORCED_LIMITS");
  if (!v) return false;
  std::string_view s(v);
  return s == "1" || s == "true" || s == "yes";
}

void need_args(const cli::Command& cmd, size_t n, const char* usage) {
  if (cmd.args.size() < n) fail("\"{}\" requires {} argument{}: {}", cmd.name, n, n == 1 ? "" : "s", usage);
}

// --preserve-fds of create, run and exec.
int preserve_fds_option(const cli::Command& cmd) {
  long long n = cmd.integer("preserve-fds", 0);
  if (n < 0 || n > 65536) fail("--preserve-fds: {} is out of range", n);
  return static_cast<int>(n);
}

CreateOptions create_options(const cli::Command& cmd) {
  need_args(cmd, 1, "<container-id>");
  CreateOptions o;
  o.id = cmd.args[0];
  o.bundle = cmd.value("bundle");
  o.console_socket = cmd.value("console-socket");
  o.pidfd_socket = cmd.value("pidfd-socket");
  o.pid_file = cmd.value("pid-file");
  o.no_pivot = cmd.boolean("no-pivot");
  o.no_new_keyring = cmd.boolean("no-new-keyring");
  o.preserve_fds = preserve_fds_option(cmd);
  return o;
}

std::string read_all_stdin() {
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = ::read(STDIN_FILENO, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read --resources from stdin");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string version_text() {
  const scmp_version* v = seccomp_version();
  // runc's lines, in runc's order: version, commit, spec, libseccomp.
  return fmt::format("{}spec: 1.2.0\nlibseccomp: {}.{}.{}\n", berth::version_text("berth"), v->major, v->minor,
                     v->micro);
}

// runc's list table: tabwriter with min width 12, padding 3.
std::string render_table(const std::vector<nlohmann::ordered_json>& rows) {
  std::vector<std::vector<std::string>> cells = {{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}};
  for (auto& r : rows)
    cells.push_back({r["id"].get<std::string>(), std::to_string(r["pid"].get<int>()), r["status"].get<std::string>(),
                     r["bundle"].get<std::string>(), r["created"].get<std::string>(), r["owner"].get<std::string>()});
  std::vector<size_t> width(6, 0);
  for (auto& row : cells)
    for (size_t i = 0; i < row.size(); i++) width[i] = std::max(width[i], row[i].size());
  std::string out;
  for (auto& row : cells) {
    for (size_t i = 0; i < row.size(); i++) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(std::max<size_t>(width[i] + 3, 12) - row[i].size(), ' ');
    }
    out += '\n';
  }
  return out;
}

int dispatch(const cli::Command& cmd) {
  RuntimeContext ctx;
  ctx.root = cmd.global.root.empty() ? default_state_root() : cmd.global.root;
  // An explicit --cgroup-manager wins over --systemd-cgroup (crun).
  const std::string& manager = cmd.global.cgroup_manager;
  ctx.systemd_cgroup = manager.empty() ? cmd.global.systemd_cgroup : manager == "systemd";
  ctx.cgroups_disabled = manager == "disabled";
  ctx.rootless_cgroups = rootless_cgroups(cmd.global.rootless);
  ctx.allow_unenforced_limits = cmd.global.allow_unenforced_limits || env_allows_unenforced_limits();
  const std::string& name = cmd.name;
  cli::check_args(cmd);

  if (name == "create") {
    create_container(ctx, create_options(cmd));
  } else if (name == "run") {
    return run_container(ctx, create_options(cmd), cmd.boolean("detach"), cmd.boolean("keep"));
  } else if (name == "start") {
    need_args(cmd, 1, "<container-id>");
    start_container(ctx, cmd.args[0]);
  } else if (name == "state") {
    need_args(cmd, 1, "<container-id>");
    print(container_state(ctx, cmd.args[0]).dump(2) + "\n");
  } else if (name == "list") {
    auto rows = list_containers(ctx);
    std::string format = cmd.value("format", "table");
    if (cmd.boolean("quiet")) {
      for (auto& r : rows) print(r["id"].get<std::string>() + "\n");
    } else if (format == "json") {
      print(nlohmann::ordered_json(rows).dump() + "\n");
    } else if (format == "table") {
      print(render_table(rows));
    } else {
      fail("invalid format option: {}", format);
    }
  } else if (name == "kill") {
    need_args(cmd, 1, "<container-id> [signal]");
    std::string sig_text = cmd.args.size() > 1 ? cmd.args[1] : "SIGTERM";
    auto sig = parse_signal(sig_text);
    if (!sig) fail("unknown signal \"{}\"", sig_text);
    kill_container(ctx, cmd.args[0], *sig, cmd.boolean("all"));
  } else if (name == "delete") {
    need_args(cmd, 1, "<container-id>");
    delete_container(ctx, cmd.args[0], cmd.boolean("force"));
  } else if (name == "exec") {
    need_args(cmd, 1, "<container-id> <command> [args...]");
    ExecOptions o;
    o.id = cmd.args[0];
    o.args.assign(cmd.args.begin() + 1, cmd.args.end());
    o.process_file = cmd.value("process");
    o.console_socket = cmd.value("console-socket");
    o.pidfd_socket = cmd.value("pidfd-socket");
    o.pid_file = cmd.value("pid-file");
    o.cwd = cmd.value("cwd");
    o.user = cmd.value("user");
    o.process_label = cmd.value("process-label");
    o.apparmor = cmd.value("apparmor");
    o.cgroup = cmd.value("cgroup");
    o.env = cmd.values("env");
    o.caps = cmd.values("cap");
    o.additional_gids = cmd.values("additional-gids");
    o.tty = cmd.boolean("tty");
    o.detach = cmd.boolean("detach");
    o.no_new_privs = cmd.boolean("no-new-privs");
    o.ignore_paused = cmd.boolean("ignore-paused");
    o.preserve_fds = preserve_fds_option(cmd);
    try {
      return exec_container(ctx, o);
    } catch (Error& e) {
      // runc: a process that could not be started exits 255.
      e.wrap("exec failed");
      throw ExecFailure(std::move(e));
    }
  } else if (name == "ps") {
    need_args(cmd, 1, "<container-id> [ps options]");
    std::vector<std::string> ps_args(cmd.args.begin() + 1, cmd.args.end());
    std::string format = cmd.value("format", "table");
    if (format != "table" && format != "json") fail("invalid format option: {}", format);
    print(container_ps(ctx, cmd.args[0], format == "json", ps_args));
  } else if (name == "pause" || name == "resume") {
    need_args(cmd, 1, "<container-id>");
    pause_container(ctx, cmd.args[0], name == "pause");
  } else if (name == "update") {
    need_args(cmd, 1, "<container-id>");
    json resources;
    if (cmd.has("resources")) {
      std::string src = cmd.value("resources");
      std::string text = src == "-" ? read_all_stdin() : with_context("--resources", [&] { return read_file(src); });
      try {
        resources = json::parse(text);
      } catch (const json::parse_error& e) {
        fail("--resources: invalid JSON: {}", e.what());
      }
      if (!resources.is_object()) fail("--resources: expected a LinuxResources JSON object");
    } else {
      std::map<std::string, std::string> flags;
      for (auto& [flag, values] : cmd.flags)
        if (!values.empty()) flags[flag] = values.back();
      resources = resources_from_update_flags(flags);
    }
    update_container(ctx, cmd.args[0], resources);
  } else if (name == "events") {
    need_args(cmd, 1, "<container-id>");
    auto interval = cmd.duration("interval", std::chrono::seconds(5));
    container_events(ctx, cmd.args[0], cmd.boolean("stats"),
                     std::chrono::duration_cast<std::chrono::milliseconds>(interval),
                     [](const json& ev) { print(ev.dump() + "\n"); });
  } else if (name == "spec") {
    std::string dir = cmd.value("bundle", ".");
    std::string path = path_join(dir, "config.json");
    if (path_exists(path)) fail("File {} exists. Remove it first", path);
    write_file(path, default_spec(cmd.boolean("rootless")).dump(2) + "\n", true, 0644);
  } else if (name == "features") {
    print(features_document().dump(2) + "\n");
  } else if (name == "checkpoint" || name == "restore") {
    fail("{} is not supported: berth is built without CRIU support", name);
  } else {
    fail("\"{}\" is not implemented by this version of berth", name);
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  remember_command_line(argc, argv);
  cli::Command cmd;
  try {
    cmd = cli::parse(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  log::Options lo;
  lo.path = cmd.global.log;
  lo.format = cmd.global.log_format == "json" ? log::Format::json : log::Format::text;
  lo.debug = cmd.global.debug;
  log::configure(lo);

  if (cmd.show_help || (cmd.name.empty() && !cmd.show_version)) {
    print(cli::usage(cmd.name));
    // A `checkpoint --help` that exits 0 would tell podman checkpointing works.
    return cmd.name == "checkpoint" || cmd.name == "restore" ? 1 : 0;
  }
  if (cmd.show_version) {
    print(version_text());
    return 0;
  }
  int status = 0;
  try {
    status = dispatch(cmd);
  } catch (const Error& e) {
    log::finish(e.what());
    std::fprintf(stderr, "%s\n", e.what());
    return dynamic_cast<const ExecFailure*>(&e) ? 255 : 1;
  } catch (const std::exception& e) {
    log::finish(e.what());
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  log::finish();
  return status;
}
