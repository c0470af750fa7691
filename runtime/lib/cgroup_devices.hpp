// linux.resources.devices on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program.
//
// Rules are evaluated in order and the last matching rule wins, separately for each
// access bit (so "allow rwm" then "deny w" leaves r and m allowed, and an O_RDWR open
// needs both r and w). Nothing matching means deny. runc's default device rules (mknod
// of anything, null, zero, full, random, urandom, tty, ptmx, /dev/pts/*, tun) are
// appended after the container's rules, as runc does, so they always hold.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <vector>

#include "common/json.hpp"

namespace berth::cgroupv2 {

struct DeviceRule {
  char type = 'a';     // 'a' (any), 'b' or 'c'
  int64_t major = -1;  // -1: any
  int64_t minor = -1;
  uint32_t access = 0; // BPF_DEVCG_ACC_{READ,WRITE,MKNOD}
  bool allow = false;
};

// Parses linux.resources.devices (config errors name the entry).
std::vector<DeviceRule> parse_device_rules(const JsonView& devices);
const std::vector<DeviceRule>& default_device_rules();

// The filter program for `rules` (already including the defaults, if wanted).
std::vector<bpf_insn> device_filter_program(const std::vector<DeviceRule>& rules);

// Loads the program and attaches it to the cgroup (BPF_F_ALLOW_MULTI), replacing the
// device program berth attached before, if any; programs of others stay.
void attach_device_filter(int cgroup_fd, const std::vector<bpf_insn>& program);
// Number of device programs attached directly to the cgroup (any owner).
size_t attached_device_programs(int cgroup_fd);

} // namespace berth::cgroupv2
