// config.json, parsed and validated once, before anything is created.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"
#include "runtime/lib/capabilities.hpp"
#include "runtime/lib/hooks.hpp"
#include "runtime/lib/rootfs.hpp"
#include "runtime/lib/seccomp.hpp"

namespace berth {

struct Namespace {
  int flag;         // CLONE_NEW*
  std::string type; // "pid", "network", ...
  std::string path; // join when set
};

struct ProcessSpec {
  bool terminal = false;
  std::optional<std::pair<unsigned, unsigned>> console_size; // height, width
  uid_t uid = 0;
  gid_t gid = 0;
  std::optional<mode_t> umask;
  std::vector<gid_t> additional_gids;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  CapabilitySets capabilities;
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::string apparmor_profile;
  std::string selinux_label;
  std::optional<int> oom_score_adj;
  SchedulerAttrs scheduler;
  IoPriority io_priority;
};

struct Spec {
  std::string oci_version;
  json raw;                // the whole document
  std::string source_text; // config.json as read (copied into the state dir for exec)
  std::string bundle;      // absolute
  std::string root_path;   // absolute rootfs path
  bool root_readonly = false;
  std::string hostname;
  std::string domainname;
  ProcessSpec process;
  std::vector<MountSpec> mounts;
  Hooks hooks;
  std::map<std::string, std::string> annotations;

  std::vector<Namespace> namespaces;
  std::vector<IdMapping> uid_mappings, gid_mappings;
  std::map<std::string, int64_t> time_offsets; // "monotonic"/"boottime" -> seconds (nanos below)
  std::map<std::string, uint32_t> time_offsets_nanos;
  std::map<std::string, std::string> sysctl;
  std::string cgroups_path;
  json resources; // linux.resources, applied by the cgroup layer
  std::vector<DeviceSpec> devices;
  std::unique_ptr<seccomp::Profile> seccomp;
  unsigned long rootfs_propagation = 0;
  std::vector<std::string> masked_paths, readonly_paths;
  std::string mount_label;
  Personality personality;

  bool has_namespace(int flag) const;
  const Namespace* find_namespace(int flag) const;
};

// Reads and validates <bundle>/config.json. Errors name the file and field:
// `config.json: process.args: must not be empty`.
Spec load_spec(const std::string& bundle);
// Same, from JSON text (bundle is used to resolve relative paths).
Spec parse_spec(const std::string& text, const std::string& bundle);

// Parses a "process" object (config.json's, or `berth exec --process FILE`).
void parse_process(const JsonView& process, ProcessSpec& out);

// linux.namespaces type name -> CLONE_NEW* (0 if unknown).
int namespace_flag(std::string_view type);
const char* namespace_proc_name(int flag); // "net", "pid", ... as in /proc/<pid>/ns

} // namespace berth
