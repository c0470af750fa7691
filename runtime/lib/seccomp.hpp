// linux.seccomp: validated at parse time, compiled and loaded with libseccomp
// in the container process just before exec.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth::seccomp {

struct ArgCondition {
  unsigned index;
  uint64_t value, value_two;
  int op; // scmp_compare
};
struct Rule {
  std::vector<std::string> names;
  // Native syscall numbers resolved by parse(), parallel to names, so load()
  // does not resolve them again. Left empty by hand-built rules: load() then
  // resolves the names itself.
  std::vector<int> syscalls;
  uint32_t action; // SCMP_ACT_* value (errno/trace data folded in)
  std::vector<ArgCondition> args;
};
struct Profile {
  uint32_t default_action = 0;
  std::vector<uint32_t> architectures; // SCMP_ARCH_*
  std::vector<std::string> flags;      // SECCOMP_FILTER_FLAG_* names
  std::vector<Rule> rules;
  std::string listener_path;
  std::string listener_metadata;
  bool uses_notify = false;
};

// Parses and validates linux.seccomp; nullptr when absent. Every error names its
// field: `linux.seccomp.syscalls[3].names[0]: unknown syscall "foo"`.
std::unique_ptr<Profile> parse(const JsonView& seccomp);

// Compiles and loads the filter into the calling process. Returns the notify fd
// when the profile uses SCMP_ACT_NOTIFY, else -1. Does not set no_new_privs:
// the caller does (or holds CAP_SYS_ADMIN).
int load(const Profile& profile);

// For `berth features`.
std::vector<std::string> known_actions();
std::vector<std::string> known_operators();
std::vector<std::string> known_archs();
std::vector<std::string> known_flags();
std::vector<std::string> supported_flags(); // those the running kernel supports

} // namespace berth::seccomp
