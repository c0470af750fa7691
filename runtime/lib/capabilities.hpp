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
// path, e.g. `process.capabilities.bounding[2]: unknown capability "CAP_FOO"`.
CapabilitySets parse_capabilities(const JsonView& caps);
// Capability number for a name like "CAP_NET_ADMIN" (also accepts "NET_ADMIN"); nullopt if unknown.
std::optional<int> capability_from_name(std::string_view name);
// "CAP_CHOWN", ... for every capability this kernel and libcap know.
std::vector<std::string> all_capability_names();
// Highest capability number the running kernel supports (/proc/sys/kernel/cap_last_cap).
int last_capability();

// Drops from the bounding set every capability not in sets.bounding (needs CAP_SETPCAP).
void drop_bounding_set(const CapabilitySets& sets);
// Sets effective/permitted/inheritable with capset and raises the ambient set; call after
// setuid with PR_SET_KEEPCAPS.
void apply_capabilities(const CapabilitySets& sets);

struct Rlimit {
  int resource;
  uint64_t soft, hard;
};
// Parses process.rlimits ("RLIMIT_NOFILE"); unknown types and soft > hard fail naming the field.
std::vector<Rlimit> parse_rlimits(const JsonView& rlimits);
void apply_rlimits(const std::vector<Rlimit>& limits);

// Signal from "KILL", "SIGKILL", "sigkill", "9", "SIGRTMIN+3"; nullopt if unknown.
std::optional<int> parse_signal(std::string_view s);
std::string signal_name(int sig); // "SIGKILL"

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
Personality parse_personality(const JsonView& pers);    // linux.personality
void apply_scheduler(const SchedulerAttrs& s);           // sched_setattr on self
void apply_io_priority(const IoPriority& p);             // ioprio_set on self
void apply_personality(const Personality& p);

} // namespace berth
