// berthctl's verbs, one function per verb, grouped in files as crictl groups them
// (pods.cpp, containers.cpp, images.cpp, logs.cpp, stats.cpp, stream.cpp, runtime.cpp).
// Each returns the process exit code; RPC failures throw RpcError, bad input
// std::runtime_error (both exit 1 in main).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ctl/lib/client.hpp"

namespace berth::ctl {

using Labels = std::map<std::string, std::string>;
// "k=v" pairs from --label; throws std::invalid_argument for one without '='.
Labels parse_labels(const std::vector<std::string>& kvs);

// runtime.cpp
int cmd_version(Client& c);
int cmd_info(Client& c, const std::string& output);
struct EventsOptions { std::string output = "table"; };
int cmd_events(Client& c, const EventsOptions& o);

// pods.cpp
struct PodsOptions {
  std::string id, name, namespace_, state, output = "table";
  std::vector<std::string> labels;
  bool quiet = false, latest = false;
  int last = 0;
};
int cmd_pods(Client& c, const PodsOptions& o);
int cmd_runp(Client& c, const std::string& config_path, const std::string& runtime_handler);
int cmd_stopp(Client& c, const std::vector<std::string>& ids);
int cmd_rmp(Client& c, std::vector<std::string> ids, bool force, bool all);
int cmd_inspectp(Client& c, const std::vector<std::string>& ids, const std::string& output);

// containers.cpp
struct PsOptions {
  std::string id, pod, name, state, image, output = "table";
  std::vector<std::string> labels;
  bool all = false, quiet = false, latest = false;
  int last = 0;
};
int cmd_ps(Client& c, const PsOptions& o);
struct CreateOptions {
  std::string pod_id, container_config, pod_config;
  bool no_pull = false;
};
// create: prints the container id. run: runp + create + start (pod_id ignored).
int cmd_create(Client& c, const CreateOptions& o);
int cmd_run(Client& c, const CreateOptions& o, const std::string& runtime_handler);
int cmd_start(Client& c, const std::vector<std::string>& ids);
int cmd_stop(Client& c, const std::vector<std::string>& ids, int64_t timeout);
int cmd_rm(Client& c, std::vector<std::string> ids, bool force, bool all);
int cmd_inspect(Client& c, const std::vector<std::string>& ids, const std::string& output);

// images.cpp
struct PullOptions {
  std::string image, creds, auth, pod_config;
};
int cmd_pull(Client& c, const PullOptions& o);
struct ImagesOptions {
  std::string filter, output = "table";
  bool quiet = false, digests = false;
};
int cmd_images(Client& c, const ImagesOptions& o);
int cmd_rmi(Client& c, const std::vector<std::string>& refs, bool all, bool prune);
int cmd_inspecti(Client& c, const std::vector<std::string>& refs, const std::string& output);

// logs.cpp
struct LogsOptions {
  std::string container, since;
  bool follow = false, timestamps = false;
  int64_t tail = -1;
};
int cmd_logs(Client& c, const LogsOptions& o);

// stats.cpp
struct StatsOptions {
  std::string id, pod, output = "table";
  std::vector<std::string> labels;
  bool all = false, watch = false;
  int seconds = 1;
};
int cmd_stats(Client& c, const StatsOptions& o);
int cmd_statsp(Client& c, const StatsOptions& o);

// stream.cpp
struct ExecOptions {
  std::string container;
  std::vector<std::string> cmd;
  bool stdin_ = false, tty = false, sync = false;
  int64_t timeout = 0;  // seconds, -s only; 0 = none
};
int cmd_exec(Client& c, const ExecOptions& o);
int cmd_attach(Client& c, const std::string& container, bool stdin_, bool tty);

} // namespace berth::ctl
