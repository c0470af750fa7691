#include "runtime/lib/cgroup_devices.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace berth::cgroupv2 {

namespace {

// Programs berth attaches carry this name, so an update replaces only its own program
// and leaves filters of others (systemd, GPU plugins) in place.
constexpr char kProgramName[] = "berth_devices";

// ---- parsing -------------------------------------------------------------------------

int64_t device_number(const JsonView& v) {
  if (v.is_null()) return -1;
  int64_t n = v.as_int();
  if (n < -1 || n > INT32_MAX) v.bad(fmt::format("{} is not a device number (or -1 for any)", n));
  return n;
}

uint32_t parse_access(const JsonView& v) {
  if (v.is_null()) return BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
  std::string text = v.as_string();
  if (text.empty()) v.bad("must not be empty (a combination of r, w and m)");
  uint32_t access = 0;
  for (char c : text) {
    switch (c) {
    case 'r': access |= BPF_DEVCG_ACC_READ; break;
    case 'w': access |= BPF_DEVCG_ACC_WRITE; break;
    case 'm': access |= BPF_DEVCG_ACC_MKNOD; break;
    default: v.bad(fmt::format("\"{}\" has an unknown access mode '{}' (want r, w and m)", text, c));
    }
  }
  return access;
}

// ---- a tiny BPF assembler ------------------------------------------------------------

class Assembler {
public:
  int label() {
    labels_.push_back(-1);
    return static_cast<int>(labels_.size() - 1);
  }
  void bind(int label) { labels_[static_cast<size_t>(label)] = static_cast<int>(code_.size()); }

  void emit(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn insn{};
    insn.code = code;
    insn.dst_reg = dst & 0xf;
    insn.src_reg = src & 0xf;
    insn.off = off;
    insn.imm = imm;
    code_.push_back(insn);
  }
  void load_u32(uint8_t dst, int16_t offset) { emit(BPF_LDX | BPF_MEM | BPF_W, dst, BPF_REG_1, offset, 0); }
  void alu32(uint8_t op, uint8_t dst, int32_t imm) { emit(BPF_ALU | op | BPF_K, dst, 0, 0, imm); }
  void mov32_reg(uint8_t dst, uint8_t src) { emit(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void jump(uint8_t op, uint8_t reg, int32_t imm, int label) {
    fixups_.emplace_back(code_.size(), label);
    emit(BPF_JMP | op | BPF_K, reg, 0, 0, imm);
  }
  void jump_always(int label) {
    fixups_.emplace_back(code_.size(), label);
    emit(BPF_JMP | BPF_JA, 0, 0, 0, 0);
  }
  void return_value(int32_t v) {
    alu32(BPF_MOV, BPF_REG_0, v);
    emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  }

  std::vector<bpf_insn> finish() {
    for (auto [at, label] : fixups_) {
      int target = labels_[static_cast<size_t>(label)];
      code_[at].off = static_cast<int16_t>(target - static_cast<int>(at) - 1);
    }
    return std::move(code_);
  }

private:
  std::vector<bpf_insn> code_;
  std::vector<int> labels_;
  std::vector<std::pair<size_t, int>> fixups_;
};

// ---- bpf(2) --------------------------------------------------------------------------

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

uint64_t ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

UniqueFd load_program(const std::vector<bpf_insn>& program) {
  static const char license[] = "Apache";
  auto load = [&](char* log, uint32_t log_size) {
    bpf_attr attr{};
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = ptr(program.data());
    attr.insn_cnt = static_cast<uint32_t>(program.size());
    attr.license = ptr(license);
    std::memcpy(attr.prog_name, kProgramName, sizeof kProgramName);
    if (log) {
      attr.log_buf = ptr(log);
      attr.log_size = log_size;
      attr.log_level = 1;
    }
    return UniqueFd(static_cast<int>(bpf(BPF_PROG_LOAD, attr)));
  };
  UniqueFd fd = load(nullptr, 0);
  if (!fd && errno == EPERM) {
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: lift it for the load only,
    // so that the container (a child of this process) does not inherit the change.
    rlimit old{};
    if (::getrlimit(RLIMIT_MEMLOCK, &old) == 0) {
      rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
      if (::setrlimit(RLIMIT_MEMLOCK, &unlimited) == 0) {
        fd = load(nullptr, 0);
        int saved = errno;
        ::setrlimit(RLIMIT_MEMLOCK, &old);
        errno = saved;
      }
    }
  }
  if (fd) return fd;
  int err = errno;
  if (err == EINVAL || err == EACCES) {
    // The verifier said no: rerun with its log, which names the offending instruction.
    std::string log(64 * 1024, '\0');
    UniqueFd again = load(log.data(), static_cast<uint32_t>(log.size()));
    if (again) return again;
    log.resize(std::strlen(log.c_str()));
    if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
    fail_code(err, "load the device filter program ({} instructions): verifier: {}", program.size(), log);
  }
  fail_code(err, "load the device filter program");
}

std::vector<uint32_t> attached_ids(int cgroup_fd) {
  std::vector<uint32_t> ids(64);
  for (;;) {
    bpf_attr attr{};
    attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = ptr(ids.data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
    if (bpf(BPF_PROG_QUERY, attr) == 0) {
      ids.resize(attr.query.prog_cnt);
      return ids;
    }
    if (errno != ENOSPC) fail_errno("query the cgroup's device programs");
    ids.resize(ids.size() * 4);
  }
}

// The device programs berth attached to this cgroup before (by name).
std::vector<UniqueFd> our_programs(int cgroup_fd) {
  std::vector<UniqueFd> ours;
  for (uint32_t id : attached_ids(cgroup_fd)) {
    bpf_attr attr{};
    attr.prog_id = id;
    UniqueFd fd(static_cast<int>(bpf(BPF_PROG_GET_FD_BY_ID, attr)));
    if (!fd) {
      if (errno == ENOENT) continue; // detached meanwhile
      fail_errno("open device program {}", id);
    }
    bpf_prog_info info{};
    bpf_attr info_attr{};
    info_attr.info.bpf_fd = static_cast<uint32_t>(fd.get());
    info_attr.info.info_len = sizeof info;
    info_attr.info.info = ptr(&info);
    if (bpf(BPF_OBJ_GET_INFO_BY_FD, info_attr) < 0) fail_errno("inspect device program {}", id);
    if (std::strncmp(info.name, kProgramName, sizeof info.name) == 0) ours.push_back(std::move(fd));
  }
  return ours;
}

long attach(int cgroup_fd, int prog_fd, uint32_t flags, int replace_fd) {
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = flags;
  attr.replace_bpf_fd = static_cast<uint32_t>(replace_fd);
  return bpf(BPF_PROG_ATTACH, attr);
}

} // namespace

std::vector<DeviceRule> parse_device_rules(const JsonView& devices) {
  std::vector<DeviceRule> rules;
  devices.each([&](const JsonView& d) {
    d.expect_object();
    DeviceRule r;
    r.allow = d.opt_bool("allow").value_or(false);
    std::string type = d.opt_string("type").value_or("a");
    if (type != "a" && type != "b" && type != "c")
      d["type"].bad(fmt::format("unknown device type \"{}\" (want a, b or c)", type));
    r.type = type[0];
    r.major = device_number(d["major"]);
    r.minor = device_number(d["minor"]);
    r.access = parse_access(d["access"]);
    rules.push_back(r);
  });
  return rules;
}

const std::vector<DeviceRule>& default_device_rules() {
  constexpr uint32_t rwm = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
  static const std::vector<DeviceRule> rules = {
    {'c', -1, -1, BPF_DEVCG_ACC_MKNOD, true}, // mknod of any device; opening is what counts
    {'b', -1, -1, BPF_DEVCG_ACC_MKNOD, true},
    {'c', 1, 3, rwm, true},    // null
    {'c', 1, 8, rwm, true},    // random
    {'c', 1, 7, rwm, true},    // full
    {'c', 5, 0, rwm, true},    // tty
    {'c', 1, 5, rwm, true},    // zero
    {'c', 1, 9, rwm, true},    // urandom
    {'c', 136, -1, rwm, true}, // /dev/pts/*
    {'c', 5, 2, rwm, true},    // ptmx
    {'c', 10, 200, rwm, true}, // /dev/net/tun (runc keeps it for compatibility)
  };
  return rules;
}

// struct bpf_cgroup_dev_ctx { u32 access_type (type | access << 16); u32 major; u32 minor; }.
// Layout: one section per access bit. A section is skipped when the request lacks its bit;
// otherwise the rules that mention the bit are tried from last to first, and the first
// match decides (deny: return 0; allow: on to the next section). No match: deny.
std::vector<bpf_insn> device_filter_program(const std::vector<DeviceRule>& rules) {
  Assembler a;
  a.load_u32(BPF_REG_2, 0);
  a.alu32(BPF_AND, BPF_REG_2, 0xffff); // r2: device type
  a.load_u32(BPF_REG_3, 0);
  a.alu32(BPF_RSH, BPF_REG_3, 16);     // r3: requested access
  a.load_u32(BPF_REG_4, 4);            // r4: major
  a.load_u32(BPF_REG_5, 8);            // r5: minor
  for (uint32_t bit : {BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE}) {
    int next_section = a.label();
    a.mov32_reg(BPF_REG_1, BPF_REG_3);
    a.alu32(BPF_AND, BPF_REG_1, static_cast<int32_t>(bit));
    a.jump(BPF_JEQ, BPF_REG_1, 0, next_section);
    bool decided = false; // an unconditional rule makes the earlier ones unreachable
    for (auto it = rules.rbegin(); it != rules.rend() && !decided; ++it) {
      if (!(it->access & bit)) continue;
      int next_rule = a.label();
      bool conditional = false;
      if (it->type != 'a') {
        a.jump(BPF_JNE, BPF_REG_2, it->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, next_rule);
        conditional = true;
      }
      if (it->major >= 0) {
        a.jump(BPF_JNE, BPF_REG_4, static_cast<int32_t>(it->major), next_rule);
        conditional = true;
      }
      if (it->minor >= 0) {
        a.jump(BPF_JNE, BPF_REG_5, static_cast<int32_t>(it->minor), next_rule);
        conditional = true;
      }
      if (it->allow) a.jump_always(next_section);
      else a.return_value(0);
      a.bind(next_rule);
      decided = !conditional;
    }
    if (!decided) a.return_value(0);
    a.bind(next_section);
  }
  a.return_value(1);
  return a.finish();
}

void attach_device_filter(int cgroup_fd, const std::vector<bpf_insn>& program) {
  UniqueFd prog = load_program(program);
  std::vector<UniqueFd> old = our_programs(cgroup_fd);
  // One old program: swap it atomically (BPF_F_REPLACE, Linux 5.6+).
  if (old.size() == 1 &&
      attach(cgroup_fd, prog.get(), BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old[0].get()) == 0)
    return;
  // Otherwise attach the new one first, so that the cgroup is never without a filter.
  if (attach(cgroup_fd, prog.get(), BPF_F_ALLOW_MULTI, 0) < 0) fail_errno("attach the device filter program");
  for (auto& fd : old) {
    bpf_attr attr{};
    attr.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.attach_bpf_fd = static_cast<uint32_t>(fd.get());
    attr.attach_type = BPF_CGROUP_DEVICE;
    if (bpf(BPF_PROG_DETACH, attr) < 0 && errno != ENOENT) fail_errno("detach the previous device filter program");
  }
}

size_t attached_device_programs(int cgroup_fd) { return attached_ids(cgroup_fd).size(); }

} // namespace berth::cgroupv2
