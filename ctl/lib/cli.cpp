#include "ctl/lib/cli.hpp"

#include <functional>
#include <iostream>
#include <memory>
#include <tuple>

#include <CLI/CLI.hpp>

#include "common/version.hpp"
#include "ctl/lib/verbs.hpp"

namespace berth::ctl {
namespace {

// The verbs' options live here for the parse; the chosen verb's action runs after it.
struct Options {
  GlobalOptions global;
  PodsOptions pods;
  PsOptions ps;
  ImagesOptions images;
  PullOptions pull;
  LogsOptions logs;
  StatsOptions stats;
  ExecOptions exec;
  CreateOptions create;
  EventsOptions events;
  std::vector<std::string> ids;
  std::string output = "json", runtime_handler, pod_config;
  bool force = false, all = false, prune = false, stdin_ = false, tty = false;
  int64_t stop_timeout = 0;
};

using Action = std::function<int(Client&)>;

CLI::App* verb(CLI::App& app, Action& chosen, const char* name, const char* about, Action action) {
  auto* sub = app.add_subcommand(name, about);
  sub->callback([&chosen, action] { chosen = action; });
  return sub;
}

} // namespace

int run(int argc, char** argv) {
  Options o;
  Action chosen;
  CLI::App app{"berthctl: a client for CRI v1 runtimes (berthd by default, containerd too)", "berthctl"};
  std::string version = berth::version_text("berthctl");
  version.pop_back(); // CLI11 adds the final newline
  app.set_version_flag("--version,-v", version);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--runtime-endpoint,-r", o.global.runtime_endpoint,
                 "CRI runtime endpoint (default $CONTAINER_RUNTIME_ENDPOINT, else unix:///run/berthd/berthd.sock)");
  app.add_option("--image-endpoint,-i", o.global.image_endpoint,
                 "CRI image endpoint (default $IMAGE_SERVICE_ENDPOINT, else the runtime endpoint)");
  app.add_option("--timeout,-t", o.global.timeout_seconds, "Timeout of an RPC in seconds (default 2)")
      ->check(CLI::PositiveNumber);

  verb(app, chosen, "version", "The runtime's name and version", [](Client& c) { return cmd_version(c); });
  auto* info = verb(app, chosen, "info", "The runtime's status and configuration",
                    [&](Client& c) { return cmd_info(c, o.output); });
  info->add_option("--output,-o", o.output, "json or yaml");

  auto* pods = verb(app, chosen, "pods", "List pods", [&](Client& c) { return cmd_pods(c, o.pods); });
  pods->add_option("--id", o.pods.id, "Filter by pod id");
  pods->add_option("--name", o.pods.name, "Filter by pod name (regular expression)");
  pods->add_option("--namespace", o.pods.namespace_, "Filter by namespace (regular expression)");
  pods->add_option("--state,-s", o.pods.state, "Filter by state: ready, notready");
  pods->add_option("--label", o.pods.labels, "Filter by key=value label");
  pods->add_flag("--quiet,-q", o.pods.quiet, "Only print pod ids");
  pods->add_option("--output,-o", o.pods.output, "json, yaml or table");
  pods->add_flag("--latest,-l", o.pods.latest, "Only the most recently created pod");
  pods->add_option("--last,-n", o.pods.last, "Only the n most recently created pods");

  auto* ps = verb(app, chosen, "ps", "List containers", [&](Client& c) { return cmd_ps(c, o.ps); });
  ps->add_flag("--all,-a", o.ps.all, "Containers in every state (default: running)");
  ps->add_option("--id", o.ps.id, "Filter by container id");
  ps->add_option("--pod,-p", o.ps.pod, "Filter by pod id");
  ps->add_option("--name", o.ps.name, "Filter by name (regular expression)");
  ps->add_option("--image", o.ps.image, "Filter by image");
  ps->add_option("--state", o.ps.state, "Filter by state: created, running, exited, unknown");
  ps->add_option("--label", o.ps.labels, "Filter by key=value label");
  ps->add_flag("--quiet,-q", o.ps.quiet, "Only print container ids");
  ps->add_option("--output,-o", o.ps.output, "json, yaml or table");
  ps->add_flag("--latest,-l", o.ps.latest, "Only the most recently created container");
  ps->add_option("--last,-n", o.ps.last, "Only the n most recently created containers");

  auto* images = verb(app, chosen, "images", "List images", [&](Client& c) { return cmd_images(c, o.images); });
  images->alias("image");
  images->add_option("filter", o.images.filter, "Only this image reference");
  images->add_flag("--quiet,-q", o.images.quiet, "Only print image ids");
  images->add_flag("--digests", o.images.digests, "Show digests");
  images->add_option("--output,-o", o.images.output, "json, yaml or table");

  auto* pull = verb(app, chosen, "pull", "Pull an image", [&](Client& c) { return cmd_pull(c, o.pull); });
  pull->add_option("image", o.pull.image, "Image reference")->required();
  pull->add_option("--creds", o.pull.creds, "USERNAME[:PASSWORD] for the registry");
  pull->add_option("--auth", o.pull.auth, "base64 of USERNAME:PASSWORD for the registry");
  pull->add_option("--pod-config,-p", o.pull.pod_config, "Pod config file (JSON or YAML) for the pull");

  auto* rmi = verb(app, chosen, "rmi", "Remove images",
                   [&](Client& c) { return cmd_rmi(c, o.ids, o.all, o.prune); });
  rmi->add_option("image", o.ids, "Image ids or references");
  rmi->add_flag("--all,-a", o.all, "Remove every image");
  rmi->add_flag("--prune,-q", o.prune, "Remove every image no container uses");

  using Inspect = int (*)(Client&, const std::vector<std::string>&, const std::string&);
  for (auto [name, about, arg, fn] : {std::tuple{"inspect", "A container's status (verbose)", "Container ids",
                                                 Inspect{cmd_inspect}},
                                      std::tuple{"inspectp", "A pod's status (verbose)", "Pod ids", Inspect{cmd_inspectp}},
                                      std::tuple{"inspecti", "An image's status (verbose)", "Image ids or references",
                                                 Inspect{cmd_inspecti}}}) {
    auto* sub = verb(app, chosen, name, about, [&o, fn = fn](Client& c) { return fn(c, o.ids, o.output); });
    sub->add_option("id", o.ids, arg)->required();
    sub->add_option("--output,-o", o.output, "json or yaml");
  }

  auto* logs = verb(app, chosen, "logs", "A container's log", [&](Client& c) { return cmd_logs(c, o.logs); });
  logs->add_option("id", o.logs.container, "Container id")->required();
  logs->add_flag("--follow,-f", o.logs.follow, "Follow the log until the container stops");
  logs->add_option("--tail", o.logs.tail, "Only the last n lines (default all)");
  logs->add_option("--since", o.logs.since, "Only lines since an RFC 3339 time or a duration ago (10s, 5m, 1h)");
  logs->add_flag("--timestamps,-t", o.logs.timestamps, "Show each line's time");

  auto stats_flags = [&](CLI::App* s, bool pod) {
    s->add_option("id", o.stats.id, pod ? "Pod id" : "Container id");
    s->add_option("--id", o.stats.id, pod ? "Filter by pod id" : "Filter by container id");
    if (!pod) {
      s->add_option("--pod,-p", o.stats.pod, "Filter by pod id");
      s->add_flag("--all,-a", o.stats.all, "Containers in every state (default: running)");
    }
    s->add_option("--label", o.stats.labels, "Filter by key=value label");
    s->add_option("--output,-o", o.stats.output, "json, yaml or table");
    s->add_flag("--watch,-w", o.stats.watch, "Refresh until interrupted");
    s->add_option("--seconds,-s", o.stats.seconds, "Seconds between the two samples (default 1)");
  };
  stats_flags(verb(app, chosen, "stats", "Containers' resource usage", [&](Client& c) { return cmd_stats(c, o.stats); }),
              false);
  stats_flags(verb(app, chosen, "statsp", "Pods' resource usage", [&](Client& c) { return cmd_statsp(c, o.stats); }),
              true);

  auto* exec = verb(app, chosen, "exec", "Run a command in a container", [&](Client& c) { return cmd_exec(c, o.exec); });
  exec->add_flag("--interactive,-i", o.exec.stdin_, "Keep stdin open");
  exec->add_flag("--tty,-t", o.exec.tty, "Allocate a terminal");
  exec->add_flag("--sync,-s", o.exec.sync, "Run with ExecSync (collect the output, then print it)");
  exec->add_option("--timeout", o.exec.timeout, "ExecSync's timeout in seconds (default none)");
  exec->add_option("id", o.exec.container, "Container id")->required();
  exec->add_option("command", o.exec.cmd, "Command and arguments")->required();
  exec->positionals_at_end();
  auto* attach = verb(app, chosen, "attach", "Attach to a running container",
                      [&](Client& c) { return cmd_attach(c, o.exec.container, o.stdin_, o.tty); });
  attach->add_option("id", o.exec.container, "Container id")->required();
  attach->add_flag("--stdin,-i", o.stdin_, "Pass stdin to the container");
  attach->add_flag("--tty,-t", o.tty, "The container has a terminal");

  auto* runp = verb(app, chosen, "runp", "Run a pod from a config file",
                    [&](Client& c) { return cmd_runp(c, o.pod_config, o.runtime_handler); });
  runp->add_option("pod-config", o.pod_config, "Pod config file (JSON or YAML)")->required();
  runp->add_option("--runtime,-r", o.runtime_handler, "Runtime handler");
  auto* create = verb(app, chosen, "create", "Create a container in a pod",
                      [&](Client& c) { return cmd_create(c, o.create); });
  create->add_option("pod-id", o.create.pod_id, "Pod id")->required();
  create->add_option("container-config", o.create.container_config, "Container config file")->required();
  create->add_option("pod-config", o.create.pod_config, "The pod's config file")->required();
  create->add_flag("--no-pull", o.create.no_pull, "Do not pull the image when missing");
  auto* runc = verb(app, chosen, "run", "Run a pod and a container in it (runp + create + start)",
                    [&](Client& c) { return cmd_run(c, o.create, o.runtime_handler); });
  runc->add_option("container-config", o.create.container_config, "Container config file")->required();
  runc->add_option("pod-config", o.create.pod_config, "Pod config file")->required();
  runc->add_option("--runtime,-r", o.runtime_handler, "Runtime handler");
  runc->add_flag("--no-pull", o.create.no_pull, "Do not pull the image when missing");
  verb(app, chosen, "start", "Start created containers", [&](Client& c) { return cmd_start(c, o.ids); })
      ->add_option("id", o.ids, "Container ids")
      ->required();
  auto* stop = verb(app, chosen, "stop", "Stop running containers",
                    [&](Client& c) { return cmd_stop(c, o.ids, o.stop_timeout); });
  stop->add_option("id", o.ids, "Container ids")->required();
  stop->add_option("--timeout,-t", o.stop_timeout, "Seconds to wait before killing (default 0)");
  auto* rm = verb(app, chosen, "rm", "Remove containers", [&](Client& c) { return cmd_rm(c, o.ids, o.force, o.all); });
  rm->add_option("id", o.ids, "Container ids");
  rm->add_flag("--force,-f", o.force, "Stop running containers first");
  rm->add_flag("--all,-a", o.all, "Remove every container");
  verb(app, chosen, "stopp", "Stop pods", [&](Client& c) { return cmd_stopp(c, o.ids); })
      ->add_option("id", o.ids, "Pod ids")
      ->required();
  auto* rmp = verb(app, chosen, "rmp", "Remove pods", [&](Client& c) { return cmd_rmp(c, o.ids, o.force, o.all); });
  rmp->add_option("id", o.ids, "Pod ids");
  rmp->add_flag("--force,-f", o.force, "Remove ready pods too");
  rmp->add_flag("--all,-a", o.all, "Remove every pod");
  auto* events = verb(app, chosen, "events", "Print container events as they happen",
                      [&](Client& c) { return cmd_events(c, o.events); });
  events->add_option("--output,-o", o.events.output, "table (one line each), json or yaml");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    Client client(o.global);
    return chosen(client);
  } catch (const RpcError& e) {
    std::cerr << "berthctl: " << e.what() << '\n';
    return 1;
  } catch (const std::invalid_argument& e) {
    std::cerr << "berthctl: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "berthctl: " << e.what() << '\n';
    return 1;
  }
}

} // namespace berth::ctl
