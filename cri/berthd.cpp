// berthd: the Berth CRI v1 daemon. Flags and the config file are read here; the
// daemon itself is cri/server (docs/cri.md, berthd(8)).
#include <malloc.h>
#include <unistd.h>

#include <cstdio>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/sd_notify.hpp"
#include "common/version.hpp"
#include "cri/server/config.hpp"
#include "cri/server/daemon.hpp"
#include "common/daemon_log.hpp"

int main(int argc, char** argv) {
  using namespace berth::cri;
  namespace dlog = berth::dlog;
  // A handful of malloc arenas instead of 8 per core: the pull threads' buffers are
  // returned to two heaps that the next pull reuses, which keeps the RSS after pulls low.
  mallopt(M_ARENA_MAX, 2);
  // systemd's notify socket and watchdog are berthd's alone: not its shims' or containers'.
  berth::claim_systemd_notify_environment();
  try {
    CommandLine cl = parse_command_line(argc, argv);
    if (cl.help) {
      fputs(usage_text().c_str(), stdout);
      return 0;
    }
    if (cl.version) {
      fputs(berth::version_text("berthd").c_str(), stdout);
      return 0;
    }
    if (cl.config_command == "default") {
      fputs(config_toml(Config{}).c_str(), stdout);
      return 0;
    }
    Config cfg;
    if (cl.config_given || berth::path_exists(cl.config_path)) cfg = load_config_file(cl.config_path);
    try {
      apply_overrides(cfg, cl);
    } catch (const berth::Error& e) {
      throw berth::UsageError(e.what()); // a bad flag value
    }
    if (cl.config_command == "dump") {
      fputs(config_toml(cfg).c_str(), stdout);
      return 0;
    }
    dlog::configure(cfg.log_level, cfg.log_format);
    dlog::route_common_log(); // the image and pod libraries log through common/log
    return run_daemon(cfg);
  } catch (const berth::UsageError& e) {
    fprintf(stderr, "berthd: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    dlog::error("berthd failed", {{"error", e.what()}});
    return 1;
  }
}
