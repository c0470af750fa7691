// process.capabilities, process.rlimits, signals by name, and the scheduling
// attributes of process (personality, scheduler, ioPriority).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.hpp"

namespace berth {

// Capability numbers (CAP_*) per set.
struct CapabilitySets {
  bool present = false; // process.capabilities was given
  std::vector<int> bounding, effective, inheritable, permitted, ambient;
};

// Parses process.capabilities ("CAP_SYS_ADMIN" names). Unknown names fail with the field
// path, e.g. `process.capabilities.bounding[2]: unknown capability "CAP_FOO"`; names the running
// kernel lacks are dropped with a warning, as runc does. A missing array is an empty set; each
// set comes back sorted and without duplicates.
CapabilitySets parse_capabilities(const JsonView& caps);
// Capability number for a name like "CAP_NET_ADMIN" (also accepts "NET_ADMIN", any case, as
// libcap does); nullopt if unknown. Numbers are not names.
std::optional<int> capability_from_name(std::string_view name);
// "CAP_CHOWN", ... for every capability this kernel and libcap know.
std::vector<std::string> all_capability_names();
// Highest capability number the running kernel supports (/proc/sys/kernel/cap_last_cap).
int last_capability();

// Drops from the bounding set every capability not in sets.bounding (needs CAP_SETPCAP unless
// nothing is left to drop). No-op when !sets.present.
void drop_bounding_set(const CapabilitySets& sets);
// Sets effective/permitted/inheritable with capset, clears the ambient set and raises
// sets.ambient; call after setuid with PR_SET_KEEPCAPS. No-op when !sets.present.
void apply_capabilities(const CapabilitySets& sets);

struct Rlimit {
  int resource;
  uint64_t soft, hard;
};
// Parses process.rlimits ("RLIMIT_NOFILE"); unknown types and soft > hard fail naming the field.
std::vector<Rlimit> parse_rlimits(const JsonView& rlimits);
void apply_rlimits(const std::vector<Rlimit>& limits);

// Signal from "KILL", "SIGKILL", "sigkill", "9", "SIGRTMIN+3", "RTMAX-2" (RT signals count
// from glibc's SIGRTMIN, as runc does); nullopt if unknown or outside 1..SIGRTMAX.
std::optional<int> parse_signal(std::string_view s);
// "SIGKILL", "SIGRTMIN+3", "SIGRTMAX-2" (split as kill -l); a bare number for the unnamed
// 32 and 33. parse_signal(signal_name(n)) == n.
std::string signal_name(int sig);

struct SchedulerAttrs {
  bool present = false;
  std::string policy; // SCHED_OTHER ...
  int policy_num = 0;
  int32_t nice = 0;
  uint32_t priority = 0;
  uint64_t flags = 0;
  uint64_t runtime = 0, deadline = 0, period = 0;
};
struct IoPriority {
  bool present = false;
  int ioprio_class = 0; // IOPRIO_CLASS_RT/BE/IDLE
  int priority = 0;
};
struct Personality {
  bool present = false;
  unsigned long domain = 0; // PER_LINUX or PER_LINUX32
};
SchedulerAttrs parse_scheduler(const JsonView& sched);  // process.scheduler
IoPriority parse_io_priority(const JsonView& prio);     // process.ioPriority
Personality parse_personality(const JsonView& pers);    // linux.personality; any flag fails
// sched_setattr on self. The spec has no clamp values, so SCHED_FLAG_UTIL_CLAMP_* reset to default.
void apply_scheduler(const SchedulerAttrs& s);
void apply_io_priority(const IoPriority& p);             // ioprio_set on self
void apply_personality(const Personality& p);

} // namespace berth
