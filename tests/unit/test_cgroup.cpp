// cgroup v2: conversions, planning, the device filter program, stats parsing, systemd
// naming — and, as root on a host with a cgroup2 hierarchy, the BPF device filter,
// freezer and cgroup.kill on a real cgroup this test creates and removes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/cgroup.hpp"
#include "runtime/lib/cgroup_devices.hpp"
#include "runtime/lib/cgroup_resources.hpp"
#include "runtime/lib/cgroup_systemd.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth;
using namespace berth::cgroupv2;
using ::testing::HasSubstr;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

ResourcePlan plan(const std::string& text, const LiveLimits* live = nullptr) {
  return plan_resources(json::parse(text), "linux.resources", live);
}

// "file=value" for every write (the first file choice), in plan order.
std::vector<std::string> writes_of(const ResourcePlan& p) {
  std::vector<std::string> out;
  for (auto& w : p.writes) out.push_back(w.files[0].file + "=" + w.files[0].value);
  return out;
}

std::string plan_error(const std::string& text) {
  return error_of([&] { plan(text); });
}

std::string plan_error_live(const std::string& text, const LiveLimits& live) {
  return error_of([&] { plan(text, &live); });
}

using berth::test_support::TempDir;

} // namespace

// ---- conversions ----------------------------------------------------------------------

TEST(CgroupConvert, SharesToWeight) {
  EXPECT_EQ(shares_to_weight(0), 0u); // unset
  EXPECT_EQ(shares_to_weight(1), 1u); // clamped like the v1 kernel
  EXPECT_EQ(shares_to_weight(2), 1u);
  EXPECT_EQ(shares_to_weight(1024), 39u);
  EXPECT_EQ(shares_to_weight(512), 20u);
  EXPECT_EQ(shares_to_weight(262144), 10000u);
  EXPECT_EQ(shares_to_weight(1000000), 10000u);
}

TEST(CgroupConvert, BlkioWeightToIoWeight) {
  EXPECT_EQ(blkio_weight_to_io_weight(0), 0u);
  EXPECT_EQ(blkio_weight_to_io_weight(10), 1u);
  EXPECT_EQ(blkio_weight_to_io_weight(100), 910u);
  EXPECT_EQ(blkio_weight_to_io_weight(500), 4950u);
  EXPECT_EQ(blkio_weight_to_io_weight(1000), 10000u);
}

TEST(CgroupConvert, SwapToV2) {
  EXPECT_EQ(swap_to_v2(0, 0), 0);            // nothing set
  EXPECT_EQ(swap_to_v2(0, 100), 0);          // no swap limit given: leave swap alone
  EXPECT_EQ(swap_to_v2(0, -1), -1);          // unlimited memory: unlimited swap
  EXPECT_EQ(swap_to_v2(-1, 100), -1);        // unlimited swap
  EXPECT_EQ(swap_to_v2(-1, -1), -1);
  EXPECT_EQ(swap_to_v2(300, 100), 200);      // memory+swap minus memory
  EXPECT_EQ(swap_to_v2(100, 100), 0);        // no swap at all
  EXPECT_EQ(swap_to_v2(300, -1), 300);       // unlimited memory: swap as given
  EXPECT_THAT(error_of([] { swap_to_v2(50, 100); }), HasSubstr("memory+swap limit should be >= memory limit"));
  EXPECT_THAT(error_of([] { swap_to_v2(100, 0); }), HasSubstr("unable to set swap limit without memory limit"));
  EXPECT_THAT(error_of([] { swap_to_v2(100, -5); }), HasSubstr("invalid memory value: -5"));
}

TEST(CgroupConvert, IoMaxLine) {
  IoMaxLimits read_only;
  read_only.rbps = 1048576;
  EXPECT_EQ(io_max_line(8, 0, read_only), "8:0 rbps=1048576");
  EXPECT_EQ(io_max_line(254, 0, {1, 2, 3, 4}), "254:0 rbps=1 wbps=2 riops=3 wiops=4");
  IoMaxLimits unlimited;
  unlimited.wiops = 0;
  EXPECT_EQ(io_max_line(8, 16, unlimited), "8:16 wiops=max"); // 0: no limit, as in v1
}

TEST(CgroupConvert, RamInBytes) {
  EXPECT_EQ(ram_in_bytes("100"), 100);
  EXPECT_EQ(ram_in_bytes("64m"), 64 << 20);
  EXPECT_EQ(ram_in_bytes("64M"), 64 << 20);
  EXPECT_EQ(ram_in_bytes("1g"), 1 << 30);
  EXPECT_EQ(ram_in_bytes("512k"), 512 << 10);
  EXPECT_EQ(ram_in_bytes("1.5GiB"), 3LL << 29);
  EXPECT_EQ(ram_in_bytes("10 MB"), 10 << 20);
  EXPECT_EQ(ram_in_bytes("7b"), 7);
  EXPECT_THAT(error_of([] { ram_in_bytes("abc"); }), HasSubstr("invalid size: 'abc'"));
  EXPECT_THAT(error_of([] { ram_in_bytes("-5"); }), HasSubstr("invalid size: '-5'"));
  EXPECT_THAT(error_of([] { ram_in_bytes("5x"); }), HasSubstr("invalid suffix: 'x'"));
  EXPECT_THAT(error_of([] { ram_in_bytes("5mbb"); }), HasSubstr("invalid suffix"));
}

// ---- planning -----------------------------------------------------------------------

TEST(CgroupPlan, Memory) {
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 67108864, "reservation": 1048576}})")),
              ::testing::ElementsAre("memory.max=67108864", "memory.low=1048576"));
  // OCI swap is memory+swap: 256M total with a 64M limit is 192M of swap.
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 67108864, "swap": 268435456}})")),
              ::testing::ElementsAre("memory.swap.max=201326592", "memory.max=67108864"));
  // memory == memory+swap: swap disabled.
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 1000, "swap": 1000}})")),
              ::testing::ElementsAre("memory.swap.max=0", "memory.max=1000"));
  // -1: unlimited memory and swap.
  auto unlimited = plan(R"({"memory": {"limit": -1}})");
  EXPECT_THAT(writes_of(unlimited), ::testing::ElementsAre("memory.swap.max=max", "memory.max=max"));
  EXPECT_TRUE(unlimited.writes[0].quiet_if_missing);
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 1000, "swap": -1}})")),
              ::testing::ElementsAre("memory.swap.max=max", "memory.max=1000"));
  EXPECT_TRUE(writes_of(plan(R"({"memory": {"limit": 0, "swap": 0}})")).empty()); // 0: unset
  EXPECT_EQ(plan(R"({"memory": {"limit": 1000}})").controllers, std::vector<std::string>{"memory"});
}

TEST(CgroupPlan, MemoryErrorsNameTheField) {
  EXPECT_THAT(plan_error(R"({"memory": {"limit": -5}})"),
              HasSubstr("linux.resources.memory.limit: -5 is not a limit"));
  EXPECT_THAT(plan_error(R"({"memory": {"limit": 100, "swap": 50}})"),
              HasSubstr("linux.resources.memory.swap: memory+swap limit should be >= memory limit"));
  EXPECT_THAT(plan_error(R"({"memory": {"swap": 50}})"),
              HasSubstr("linux.resources.memory.swap: unable to set swap limit without memory limit"));
  EXPECT_THAT(plan_error(R"({"memory": {"limit": "1g"}})"), HasSubstr("linux.resources.memory.limit: expected"));
  EXPECT_THAT(plan_error(R"({"memory": {"swappiness": 200}})"), HasSubstr("linux.resources.memory.swappiness"));
}

TEST(CgroupPlan, WarnsForWhatV2CannotExpress) {
  auto p = plan(R"({"memory": {"kernel": 1000, "kernelTCP": 1000, "swappiness": 10, "disableOOMKiller": true},
                    "cpu": {"realtimeRuntime": 950000, "realtimePeriod": 1000000},
                    "network": {"classID": 1}, "blockIO": {"leafWeight": 10}, "bogus": 1})");
  std::string all;
  for (auto& w : p.warnings) all += w + "\n";
  for (const char* field : {"memory.kernel:", "memory.kernelTCP:", "memory.swappiness:", "memory.disableOOMKiller:",
                            "cpu.realtimeRuntime:", "cpu.realtimePeriod:", "network:", "blockIO.leafWeight:",
                            "linux.resources.bogus: not applied: unknown field"})
    EXPECT_THAT(all, HasSubstr(field));
  EXPECT_TRUE(p.writes.empty());
}

TEST(CgroupPlan, Cpu) {
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"shares": 1024, "quota": 50000, "period": 100000}})")),
              ::testing::ElementsAre("cpu.weight=39", "cpu.max=50000 100000"));
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"quota": 20000}})")), ::testing::ElementsAre("cpu.max=20000 100000"));
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"quota": -1, "period": 50000}})")),
              ::testing::ElementsAre("cpu.max=max 50000"));
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"burst": 1000, "idle": 0}})")),
              ::testing::ElementsAre("cpu.idle=0", "cpu.max.burst=1000"));
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"cpus": "0-1", "mems": "0"}})")),
              ::testing::ElementsAre("cpuset.cpus=0-1", "cpuset.mems=0"));
  EXPECT_TRUE(plan(R"({"cpu": {"burst": 1000}})").writes[0].retry_after_others);
  EXPECT_THAT(plan_error(R"({"cpu": {"idle": 2}})"), HasSubstr("linux.resources.cpu.idle: 2 is not 0 or 1"));
}

TEST(CgroupPlan, PidsIoHugetlbRdma) {
  EXPECT_THAT(writes_of(plan(R"({"pids": {"limit": 20}})")), ::testing::ElementsAre("pids.max=20"));
  EXPECT_THAT(writes_of(plan(R"({"pids": {"limit": -1}})")), ::testing::ElementsAre("pids.max=max"));
  EXPECT_THAT(writes_of(plan(R"({"pids": {"limit": 0}})")), ::testing::ElementsAre("pids.max=max"));
  EXPECT_THAT(plan_error(R"({"pids": {"limit": -2}})"), HasSubstr("linux.resources.pids.limit: -2"));

  auto io = plan(R"({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
      "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
      "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 10}, {"major": 8, "minor": 0, "rate": 0}]}})");
  ASSERT_EQ(io.writes.size(), 4u);
  EXPECT_EQ(io.writes[0].files[0].file, "io.bfq.weight"); // BFQ first, with the v1 value
  EXPECT_EQ(io.writes[0].files[0].value, "500");
  EXPECT_EQ(io.writes[0].files[1].file, "io.weight"); // else iocost, converted
  EXPECT_EQ(io.writes[0].files[1].value, "4950");
  EXPECT_EQ(io.writes[1].files[0].value, "8:0 100");
  EXPECT_EQ(io.writes[1].files[1].value, "8:0 910");
  EXPECT_EQ(io.writes[2].files[0].value, "254:0 rbps=1048576 wiops=10"); // one line per device
  EXPECT_EQ(io.writes[3].files[0].value, "8:0 wiops=max");
  EXPECT_THAT(plan_error(R"({"blockIO": {"weight": 5}})"),
              HasSubstr("linux.resources.blockIO.weight: 5 is out of range (10-1000)"));

  EXPECT_THAT(writes_of(plan(R"({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]})")),
              ::testing::ElementsAre("hugetlb.2MB.max=4194304", "hugetlb.2MB.rsvd.max=4194304"));
  EXPECT_THAT(plan_error(R"({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]})"),
              HasSubstr("linux.resources.hugepageLimits[0].pageSize: \"2M\" is not a page size"));
  EXPECT_THAT(writes_of(plan(R"({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}})")),
              ::testing::ElementsAre("rdma.max=mlx5_1 hca_handle=3 hca_object=10000"));
}

TEST(CgroupPlan, Unified) {
  EXPECT_EQ(unified_key_controller("memory.high", "f"), "memory");
  EXPECT_EQ(unified_key_controller("cgroup.max.depth", "f"), "");
  EXPECT_EQ(unified_key_controller("io.max", "f"), "io");
  EXPECT_THAT(error_of([] { unified_key_controller("../memory.max", "u"); }), HasSubstr("no '/' or '..'"));
  EXPECT_THAT(error_of([] { unified_key_controller("x/memory.max", "u"); }), HasSubstr("no '/' or '..'"));
  EXPECT_THAT(error_of([] { unified_key_controller("memory", "u"); }), HasSubstr("CONTROLLER.PARAMETER"));
  EXPECT_THAT(error_of([] { unified_key_controller("foo.bar", "u"); }),
              HasSubstr("u: \"foo.bar\": unknown cgroup v2 controller \"foo\""));
  EXPECT_THAT(error_of([] { unified_key_controller("cgroup.procs", "u"); }), HasSubstr("managed by the runtime"));
  auto p = plan(R"({"unified": {"memory.high": "50000000", "io.max": "8:0 rbps=1\n8:16 wbps=2\n"}})");
  EXPECT_THAT(writes_of(p), ::testing::ElementsAre("io.max=8:0 rbps=1", "io.max=8:16 wbps=2", "memory.high=50000000"));
  EXPECT_EQ(p.writes[0].field, "linux.resources.unified.io.max");
  EXPECT_THAT(plan_error(R"({"unified": {"foo.bar": "1"}})"), HasSubstr("linux.resources.unified.foo.bar"));
}

TEST(CgroupPlan, UpdateMergesWithLiveValues) {
  LiveLimits live;
  live.memory_max = 64 << 20;
  live.swap_max = 64 << 20; // created with memory 64M, memory+swap 128M
  live.cpu_quota = 50000;
  live.cpu_period = 200000;
  // --memory 100M keeps memory+swap at 128M, as runc (which keeps it in its config).
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 104857600}})", &live)),
              ::testing::ElementsAre("memory.swap.max=29360128", "memory.max=104857600"));
  EXPECT_THAT(plan_error_live(R"({"memory": {"limit": 268435456}})", live),
              HasSubstr("memory+swap limit should be >= memory limit"));
  // --memory-swap alone: against the live memory limit.
  EXPECT_THAT(writes_of(plan(R"({"memory": {"swap": 268435456}})", &live)),
              ::testing::ElementsAre("memory.swap.max=201326592"));
  // --memory -1 alone lifts swap too (runc's fix-up).
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": -1}})", &live)),
              ::testing::ElementsAre("memory.swap.max=max", "memory.max=max"));
  // The other half of cpu.max stays.
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"quota": 10000}})", &live)), ::testing::ElementsAre("cpu.max=10000 200000"));
  EXPECT_THAT(writes_of(plan(R"({"cpu": {"period": 100000}})", &live)), ::testing::ElementsAre("cpu.max=50000 100000"));
  live.swap_max = -1; // unlimited swap stays unlimited
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 1000}})", &live)),
              ::testing::ElementsAre("memory.swap.max=max", "memory.max=1000"));
  live.swap_max = 0; // no swap accounting: swap left alone
  EXPECT_THAT(writes_of(plan(R"({"memory": {"limit": 1000}})", &live)), ::testing::ElementsAre("memory.max=1000"));
  auto checked = plan(R"({"memory": {"limit": 1000, "checkBeforeUpdate": true}})", &live);
  EXPECT_TRUE(checked.check_before_update);
  EXPECT_EQ(checked.checked_memory, 1000);
}

TEST(CgroupPlan, Devices) {
  EXPECT_FALSE(plan("{}").devices);
  auto p = plan(R"({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1,
                                  "minor": 5, "access": "rw"}]})");
  ASSERT_TRUE(p.devices);
  ASSERT_EQ(p.devices->size(), 2u);
  EXPECT_EQ((*p.devices)[0].type, 'a');
  EXPECT_EQ((*p.devices)[0].major, -1);
  EXPECT_EQ((*p.devices)[1].access, uint32_t(BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE));
  EXPECT_THAT(plan_error(R"({"devices": [{"allow": true, "type": "x"}]})"),
              HasSubstr("linux.resources.devices[0].type: unknown device type \"x\""));
  EXPECT_THAT(plan_error(R"({"devices": [{"allow": true, "access": "rwx"}]})"),
              HasSubstr("linux.resources.devices[0].access: \"rwx\" has an unknown access mode 'x'"));
  EXPECT_THAT(plan_error(R"({"devices": [{"allow": true, "major": -7}]})"),
              HasSubstr("linux.resources.devices[0].major: -7 is not a device number"));
}

// ---- the device filter program ----------------------------------------------------------

namespace {

// Runs a device filter program the way the kernel would, for the instructions the
// generator emits: returns the program's verdict (1 allow, 0 deny).
int run_filter(const std::vector<bpf_insn>& prog, char type, uint32_t major, uint32_t minor, const char* access) {
  uint32_t acc = 0;
  for (const char* a = access; *a; a++)
    acc |= *a == 'r' ? BPF_DEVCG_ACC_READ : *a == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
  uint32_t ctx[3] = {(type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR) | (acc << 16), major, minor};
  uint64_t r[11] = {};
  for (size_t pc = 0, steps = 0; pc < prog.size() && steps < 100000; pc++, steps++) {
    const bpf_insn& i = prog[pc];
    uint8_t cls = BPF_CLASS(i.code), op = BPF_OP(i.code);
    if (cls == BPF_LDX) {
      r[i.dst_reg] = ctx[i.off / 4];
    } else if (cls == BPF_ALU) {
      uint32_t src = BPF_SRC(i.code) == BPF_X ? static_cast<uint32_t>(r[i.src_reg]) : static_cast<uint32_t>(i.imm);
      uint32_t dst = static_cast<uint32_t>(r[i.dst_reg]);
      if (op == BPF_AND) dst &= src;
      else if (op == BPF_RSH) dst >>= src;
      else if (op == BPF_MOV) dst = src;
      else ADD_FAILURE() << "unexpected ALU op " << int(op);
      r[i.dst_reg] = dst;
    } else if (cls == BPF_JMP) {
      if (op == BPF_EXIT) return static_cast<int>(r[0]);
      bool taken = op == BPF_JA || (op == BPF_JEQ && r[i.dst_reg] == static_cast<uint64_t>(int64_t(i.imm))) ||
                   (op == BPF_JNE && r[i.dst_reg] != static_cast<uint64_t>(int64_t(i.imm)));
      if (taken) pc += static_cast<size_t>(i.off);
    } else {
      ADD_FAILURE() << "unexpected instruction class " << int(cls);
    }
  }
  ADD_FAILURE() << "program did not exit";
  return -1;
}

std::vector<DeviceRule> rules(const std::string& text, bool with_defaults = false) {
  json j = json::parse(text);
  auto out = parse_device_rules(JsonView(j, "devices"));
  if (with_defaults) out.insert(out.end(), default_device_rules().begin(), default_device_rules().end());
  return out;
}

} // namespace

TEST(CgroupDevices, DenyAllThenAllow) {
  auto prog = device_filter_program(rules(R"([{"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"}])"));
  EXPECT_EQ(run_filter(prog, 'c', 1, 5, "r"), 1);
  EXPECT_EQ(run_filter(prog, 'c', 1, 5, "rw"), 1);
  EXPECT_EQ(run_filter(prog, 'c', 1, 5, "m"), 0);
  EXPECT_EQ(run_filter(prog, 'c', 1, 3, "r"), 0);
  EXPECT_EQ(run_filter(prog, 'b', 1, 5, "r"), 0);
}

TEST(CgroupDevices, LastMatchWinsPerAccessBit) {
  auto prog = device_filter_program(rules(R"([{"allow": true, "access": "rwm"},
      {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}])"));
  EXPECT_EQ(run_filter(prog, 'c', 1, 3, "r"), 1);
  EXPECT_EQ(run_filter(prog, 'c', 1, 3, "w"), 0);
  EXPECT_EQ(run_filter(prog, 'c', 1, 3, "rw"), 0); // an O_RDWR open needs w as well
  EXPECT_EQ(run_filter(prog, 'c', 1, 5, "rw"), 1);
  EXPECT_EQ(run_filter(prog, 'b', 8, 0, "rwm"), 1);
  // Access granted by separate rules adds up.
  auto split = device_filter_program(rules(R"([{"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "w"}])"));
  EXPECT_EQ(run_filter(split, 'c', 1, 3, "rw"), 1);
  EXPECT_EQ(run_filter(split, 'c', 1, 3, "m"), 0);
  // A later deny overrides an earlier allow; a later allow re-opens.
  auto order = device_filter_program(rules(R"([{"allow": true, "type": "c", "major": 10, "access": "rwm"},
      {"allow": false, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
      {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "r"}])"));
  EXPECT_EQ(run_filter(order, 'c', 10, 200, "r"), 1);
  EXPECT_EQ(run_filter(order, 'c', 10, 200, "w"), 0);
  EXPECT_EQ(run_filter(order, 'c', 10, 229, "rw"), 1);
}

TEST(CgroupDevices, Wildcards) {
  auto prog = device_filter_program(rules(R"([{"allow": true, "type": "c", "major": -1, "minor": 3, "access": "r"},
      {"allow": true, "type": "b", "major": 8, "access": "r"}])"));
  EXPECT_EQ(run_filter(prog, 'c', 77, 3, "r"), 1);
  EXPECT_EQ(run_filter(prog, 'c', 77, 4, "r"), 0);
  EXPECT_EQ(run_filter(prog, 'b', 8, 17, "r"), 1);
  EXPECT_EQ(run_filter(prog, 'c', 8, 17, "r"), 0);
  EXPECT_EQ(run_filter(device_filter_program({}), 'c', 1, 3, "r"), 0); // no rules: deny
  auto all = device_filter_program(rules(R"([{"allow": true, "access": "rwm"}])"));
  EXPECT_EQ(run_filter(all, 'b', 259, 1, "rwm"), 1);
  EXPECT_LT(all.size(), 30u); // an unconditional rule ends each section
}

TEST(CgroupDevices, RuncDefaultsAlwaysHold) {
  auto prog = device_filter_program(rules(R"([{"allow": false, "access": "rwm"},
      {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])", true));
  EXPECT_EQ(run_filter(prog, 'c', 1, 3, "rw"), 1); // null (defaults come last, as in runc)
  EXPECT_EQ(run_filter(prog, 'c', 136, 4, "rw"), 1); // /dev/pts/4
  EXPECT_EQ(run_filter(prog, 'c', 5, 2, "rw"), 1);   // ptmx
  EXPECT_EQ(run_filter(prog, 'c', 10, 200, "rw"), 1); // tun
  EXPECT_EQ(run_filter(prog, 'b', 8, 0, "m"), 1);    // mknod of anything
  EXPECT_EQ(run_filter(prog, 'b', 8, 0, "r"), 0);
  EXPECT_EQ(run_filter(prog, 'c', 1, 1, "r"), 0); // /dev/mem
}

// ---- live cgroups (root, a cgroup2 hierarchy; only cgroups made here are touched) ------

namespace {

class LiveCgroup : public ::testing::Test {
protected:
  void SetUp() override {
    if (::geteuid() != 0 || cgroup2_root().empty()) GTEST_SKIP() << "needs root and a cgroup2 hierarchy";
    rel_ = "/berth-unit-" + std::to_string(::getpid());
    base_ = cgroup2_root() + rel_;
    if (::mkdir(base_.c_str(), 0755) < 0) GTEST_SKIP() << "cannot create " << base_ << ": " << std::strerror(errno);
  }
  void TearDown() override {
    if (!base_.empty()) cgroup_destroy(base_);
  }
  // A child that joins `cgroup`, then runs fn and exits with its result.
  pid_t child_in(const std::string& cgroup, const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid == 0) {
      write_file(cgroup + "/cgroup.procs", "0", false);
      _exit(fn());
    }
    return pid;
  }
  static int wait_status(pid_t pid) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    return st;
  }
  std::string rel_, base_;
};

int open_errno(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

} // namespace

TEST_F(LiveCgroup, DeviceFilterDeniesAndIsReplaced) {
  std::string cg = base_ + "/dev";
  ASSERT_EQ(::mkdir(cg.c_str(), 0755), 0);
  UniqueFd dir(::open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  attach_device_filter(dir.get(), device_filter_program(rules(R"([{"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}])")));
  EXPECT_EQ(attached_device_programs(dir.get()), 1u);
  pid_t pid = child_in(cg, [] { return open_errno("/dev/null") * 1000 + open_errno("/dev/zero"); });
  int st = wait_status(pid);
  ASSERT_TRUE(WIFEXITED(st));
  // Exit codes are 8 bits: EPERM*1000 % 256 = 232, and /dev/zero opened (0).
  EXPECT_EQ(WEXITSTATUS(st), (EPERM * 1000) % 256);
  // An update replaces berth's program instead of stacking another one.
  attach_device_filter(dir.get(), device_filter_program(rules(R"([{"allow": true, "access": "rwm"}])")));
  EXPECT_EQ(attached_device_programs(dir.get()), 1u);
  pid = child_in(cg, [] { return open_errno("/dev/null"); });
  st = wait_status(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST_F(LiveCgroup, CreateResolvesAndRemoves) {
  std::string path;
  {
    Cgroup cg = Cgroup::create(rel_ + "/a/../b/c", "ignored");
    path = cg.path();
    EXPECT_EQ(path, base_ + "/b/c");
    EXPECT_TRUE(path_exists(path));
    EXPECT_GE(cg.dir_fd(), 0);
    Cgroup moved = std::move(cg); // the moved-from object must not remove anything
    EXPECT_FALSE(cg.enabled());
    EXPECT_TRUE(path_exists(path));
  }
  EXPECT_FALSE(path_exists(path)); // not committed: removed
  {
    Cgroup cg = Cgroup::create(rel_ + "/kept", "x");
    cg.commit();
  }
  EXPECT_TRUE(path_exists(base_ + "/kept"));
  EXPECT_THAT(error_of([] { Cgroup::create("system.slice:berth:x", "x"); }), HasSubstr("needs --systemd-cgroup"));
}

TEST_F(LiveCgroup, ApplyResourcesUnenforcedLimitsNeedTheOptIn) {
  Cgroup cg = Cgroup::create(rel_ + "/apply", "x");
  json limits = json::parse(R"({"memory": {"limit": 67108864}, "pids": {"limit": 30},
      "cpu": {"shares": 512}, "devices": [{"allow": false, "access": "rwm"}]})");
  auto offered = split(read_file(cgroup2_root() + "/cgroup.controllers"), ' ');
  bool memory_offered = std::find_if(offered.begin(), offered.end(), [](auto& c) { return trim(c) == "memory"; }) !=
                        offered.end();
  if (!memory_offered) {
    // A hybrid host: no limit can be enforced through cgroup v2, and create must say so.
    std::string err = error_of([&] { apply_resources(cg.path(), limits); });
    EXPECT_THAT(err, HasSubstr("cannot enforce the"));
    EXPECT_THAT(err, HasSubstr("memory (linux.resources.memory.limit)"));
    EXPECT_THAT(err, HasSubstr("cgroup mode is " + cgroup_mode_description()));
    EXPECT_THAT(err, HasSubstr("--allow-unenforced-limits"));
    EXPECT_THAT(err, HasSubstr("BERTH_ALLOW_UNENFORCED_LIMITS=1"));
  }
  // Accepted: warnings, and what the host offers is applied.
  LimitsPolicy allow;
  allow.allow_unenforced = true;
  EXPECT_NO_THROW(apply_resources(cg.path(), limits, allow));
  UniqueFd dir(::open(cg.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_EQ(attached_device_programs(dir.get()), 1u); // devices need no controller
  EXPECT_THAT(error_of([&] { apply_resources(cg.path(), json::parse(R"({"memory": {"limit": -3}})"), allow); }),
              HasSubstr("linux.resources.memory.limit"));
  if (!path_exists(cg.path() + "/pids.max")) {
    EXPECT_THAT(error_of([&] { update_resources(cg.path(), json::parse(R"({"pids": {"limit": 5}})")); }),
                HasSubstr("resources.pids.limit: cannot be set: "));
  }
}

TEST(CgroupApply, NoCgroupMeansNoLimits) {
  // Any host: without a cgroup (rootless without delegation, no cgroup v2) nothing is enforced.
  json limits = json::parse(R"({"pids": {"limit": 30}})");
  LimitsPolicy policy;
  policy.no_cgroup_reason = "rootless, not delegated";
  EXPECT_THAT(error_of([&] { apply_resources("", limits, policy); }),
              HasSubstr("pids (linux.resources.pids.limit): the container has no cgroup (rootless, not delegated)"));
  policy.allow_unenforced = true;
  EXPECT_NO_THROW(apply_resources("", limits, policy));
  EXPECT_NO_THROW(apply_resources("", json::parse(R"({"devices": []})"))); // no limits: nothing to refuse
}

TEST_F(LiveCgroup, FreezeKillPidsDestroy) {
  std::string cg = base_ + "/f", nested = cg + "/inner";
  ASSERT_EQ(::mkdir(cg.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(nested.c_str(), 0755), 0);
  pid_t a = child_in(nested, [] {
    ::pause();
    return 0;
  });
  // Wait until the child is in (it writes cgroup.procs itself).
  for (int i = 0; i < 200 && cgroup_pids(cg).empty(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(cgroup_pids(cg), std::vector<pid_t>{a}); // found in the nested cgroup
  cgroup_freeze(cg, true);
  EXPECT_TRUE(cgroup_frozen(cg));
  EXPECT_THAT(read_file(cg + "/cgroup.events"), HasSubstr("frozen 1"));
  cgroup_freeze(cg, false);
  EXPECT_FALSE(cgroup_frozen(cg));
  EXPECT_THAT(read_file(cg + "/cgroup.events"), HasSubstr("frozen 0"));
  if (path_exists(cg + "/cgroup.kill")) {
    EXPECT_TRUE(cgroup_kill(cg));
    int st = wait_status(a);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  } else {
    ::kill(a, SIGKILL);
    wait_status(a);
  }
  EXPECT_FALSE(cgroup_kill(base_ + "/missing"));
  EXPECT_EQ(cgroup_oom_kills(cg), 0u);
  cgroup_destroy(cg); // removes the nested cgroup too
  EXPECT_FALSE(path_exists(cg));
  EXPECT_THAT(error_of([&] { cgroup_freeze(base_ + "/missing", true); }), HasSubstr("missing"));
}

// ---- stats ------------------------------------------------------------------------------

TEST(CgroupStats, FromSampleFiles) {
  TempDir d;
  d.put("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 3\n"
                    "throttled_usec 2000\nnr_bursts 0\nburst_usec 0\n");
  d.put("cpu.pressure", "some avg10=1.50 avg60=0.00 avg300=0.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 "
                        "total=45\n");
  d.put("memory.stat", "anon 4096\nfile 8192\nkernel 100\n");
  d.put("memory.current", "12288\n");
  d.put("memory.max", "67108864\n");
  d.put("memory.peak", "20000\n");
  d.put("memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n");
  d.put("memory.swap.current", "100\n");
  d.put("memory.swap.max", "max\n");
  d.put("pids.current", "3\n");
  d.put("pids.max", "max\n");
  d.put("io.stat", "254:0 rbytes=3145728 wbytes=0 rios=48 wios=0 dbytes=0 dios=0\n");
  d.put("hugetlb.2MB.current", "2097152\n");
  d.put("hugetlb.2MB.events", "max 2\n");
  d.put("cpuset.cpus.effective", "0-1\n");
  json s = cgroup_stats(d.path());
  EXPECT_EQ(s["cpu"]["usage"], json::parse(R"({"total": 1500000, "kernel": 500000, "user": 1000000})"));
  EXPECT_EQ(s["cpu"]["throttling"], json::parse(R"({"periods": 10, "throttledPeriods": 3, "throttledTime": 2000000})"));
  EXPECT_EQ(s["cpu"]["psi"]["some"]["total"], 123);
  EXPECT_DOUBLE_EQ(s["cpu"]["psi"]["some"]["avg10"].get<double>(), 1.5);
  EXPECT_EQ(s["memory"]["cache"], 8192);
  EXPECT_EQ(s["memory"]["usage"], json::parse(R"({"limit": 67108864, "usage": 12288, "max": 20000, "failcnt": 7})"));
  // memory+swap, as runc reports it; swap "max" stays max.
  EXPECT_EQ(s["memory"]["swap"]["usage"], 12388);
  EXPECT_EQ(s["memory"]["swap"]["limit"], std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(s["memory"]["kernel"], json::parse(R"({"limit": 0, "failcnt": 0})"));
  EXPECT_EQ(s["memory"]["raw"]["anon"], 4096);
  EXPECT_EQ(s["pids"], json::parse(R"({"current": 3})")); // "max" is reported as no limit
  EXPECT_EQ(s["blkio"]["ioServiceBytesRecursive"],
            json::parse(R"([{"major": 254, "op": "Read", "value": 3145728}, {"major": 254, "op": "Write"}])"));
  EXPECT_EQ(s["blkio"]["ioServicedRecursive"][0], json::parse(R"({"major": 254, "op": "Read", "value": 48})"));
  EXPECT_EQ(s["hugetlb"], json::parse(R"({"2MB": {"usage": 2097152, "failcnt": 2}})"));
  EXPECT_EQ(s["cpuset"]["cpus"], json::parse("[0, 1]"));
  EXPECT_EQ(s["cpuset"]["mem_hardwall"], 0);
  EXPECT_EQ(s["intel_rdt"], json::object());
  EXPECT_TRUE(s["network_interfaces"].is_null());
  EXPECT_FALSE(s["blkio"].contains("psi"));
}

TEST(CgroupStats, EmptyCgroupShape) {
  TempDir d;
  json s = cgroup_stats(d.path());
  for (const char* k : {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"})
    EXPECT_TRUE(s.contains(k)) << k;
  EXPECT_EQ(s["cpu"]["usage"], json::parse(R"({"kernel": 0, "user": 0})"));
  EXPECT_EQ(s["cpu"]["throttling"], json::object());
  EXPECT_EQ(s["memory"]["usage"], json::parse(R"({"limit": 0, "failcnt": 0})"));
  EXPECT_EQ(s["blkio"], json::object());
  EXPECT_EQ(s["hugetlb"], json::object());
  EXPECT_THAT(error_of([] { cgroup_stats("/nonexistent/cgroup"); }), HasSubstr("does not exist"));
}

TEST(CgroupStats, OomKills) {
  TempDir d;
  EXPECT_EQ(cgroup_oom_kills(d.path()), 0u);
  d.put("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n");
  EXPECT_EQ(cgroup_oom_kills(d.path()), 2u);
}

// ---- update flags -------------------------------------------------------------------------

TEST(CgroupUpdateFlags, ToResources) {
  json r = resources_from_update_flags({{"memory", "64m"}, {"memory-swap", "-1"}, {"memory-reservation", "1g"},
                                        {"cpu-quota", "-1"}, {"cpu-period", "100000"}, {"cpu-share", "512"},
                                        {"cpuset-cpus", "0-1"}, {"pids-limit", "10"}, {"blkio-weight", "500"},
                                        {"cpu-idle", "1"}, {"cpu-burst", "1000"}});
  EXPECT_EQ(r, json::parse(R"({"memory": {"limit": 67108864, "swap": -1, "reservation": 1073741824},
      "cpu": {"quota": -1, "period": 100000, "shares": 512, "cpus": "0-1", "idle": 1, "burst": 1000},
      "pids": {"limit": 10}, "blockIO": {"weight": 500}})"));
  EXPECT_EQ(resources_from_update_flags({{"--kernel-memory", "1m"}}), json::parse(R"({"memory": {"kernel": 1048576}})"));
  EXPECT_EQ(resources_from_update_flags({}), json::object());
  EXPECT_THAT(error_of([] { resources_from_update_flags({{"memory", "lots"}}); }),
              HasSubstr("invalid value for memory: invalid size: 'lots'"));
  EXPECT_THAT(error_of([] { resources_from_update_flags({{"cpu-share", "x"}}); }),
              HasSubstr("invalid value for cpu-share: strconv.ParseUint: parsing \"x\": invalid syntax"));
  EXPECT_THAT(error_of([] { resources_from_update_flags({{"cpu-quota", "1.5"}}); }),
              HasSubstr("invalid value for cpu-quota"));
  EXPECT_THAT(error_of([] { resources_from_update_flags({{"blkio-weight", "5"}}); }),
              HasSubstr("invalid value for blkio-weight"));
  EXPECT_THAT(error_of([] { resources_from_update_flags({{"l3-cache-schema", "L3:0=f"}}); }),
              HasSubstr("Intel RDT/CAT: l3 cache schema is not enabled"));
  EXPECT_THAT(error_of([] { resources_from_update_flags({{"bogus", "1"}}); }), HasSubstr("unknown flag"));
}

// ---- paths and systemd naming ---------------------------------------------------------------

TEST(CgroupPaths, ResolveLikeRunc) {
  EXPECT_EQ(cgroup_resolve_path("/a/b", "id", "/x/y"), "/a/b");
  EXPECT_EQ(cgroup_resolve_path("/a/../../b/./c", "id", "/x/y"), "/b/c");
  EXPECT_EQ(cgroup_resolve_path("c", "id", "/x/y"), "/x/c");   // under the parent of our own
  EXPECT_EQ(cgroup_resolve_path("", "id", "/x/y"), "/x/id");
  EXPECT_EQ(cgroup_resolve_path("", "id", "/"), "/id");
  EXPECT_EQ(cgroup_resolve_path("../../../c", "id", "/x/y"), "/x/c"); // cannot climb out
}

TEST(CgroupSystemd, SliceExpansion) {
  EXPECT_EQ(systemd_expand_slice("system.slice"), "/system.slice");
  EXPECT_EQ(systemd_expand_slice("a-b-c.slice"), "/a.slice/a-b.slice/a-b-c.slice");
  EXPECT_EQ(systemd_expand_slice("-.slice"), "/");
  for (const char* bad : {"a--b.slice", "-a.slice", "a-.slice", "foo", "a/b.slice", ".slice"})
    EXPECT_THAT(error_of([&] { systemd_expand_slice(bad); }), HasSubstr("invalid slice name")) << bad;
}

TEST(CgroupSystemd, ScopeNames) {
  auto s = systemd_scope_for("machine.slice:libpod:abc", "id");
  EXPECT_EQ(s.slice, "machine.slice");
  EXPECT_EQ(s.unit, "libpod-abc.scope");
  EXPECT_EQ(s.cgroup, "/machine.slice/libpod-abc.scope");
  s = systemd_scope_for("", "c1");
  EXPECT_EQ(s.slice, "system.slice");
  EXPECT_EQ(s.unit, "berth-c1.scope");
  EXPECT_EQ(s.cgroup, "/system.slice/berth-c1.scope");
  s = systemd_scope_for("kube-pods.slice:cri-containerd:x1", "id");
  EXPECT_EQ(s.cgroup, "/kube.slice/kube-pods.slice/cri-containerd-x1.scope");
  s = systemd_scope_for(":docker:x", "id");
  EXPECT_EQ(s.cgroup, "/system.slice/docker-x.scope");
  s = systemd_scope_for("-.slice::x", "id");
  EXPECT_EQ(s.unit, "x.scope");
  EXPECT_EQ(s.cgroup, "/x.scope");
  EXPECT_THAT(error_of([] { systemd_scope_for("/a/b", "id"); }),
              HasSubstr("expected cgroupsPath to be of format \"slice:prefix:name\""));
  EXPECT_THAT(error_of([] { systemd_scope_for("a.slice:b", "id"); }), HasSubstr("slice:prefix:name"));
  EXPECT_THAT(error_of([] { systemd_scope_for("bad:p:n", "id"); }), HasSubstr("invalid slice name: bad"));
}

TEST(CgroupSystemd, CpuMask) {
  EXPECT_EQ(cpu_list_to_mask_hex("0-3"), "0f");
  EXPECT_EQ(cpu_list_to_mask_hex("8"), "0001");
  EXPECT_EQ(cpu_list_to_mask_hex("0,2,9-10"), "0506");
  EXPECT_EQ(cpu_list_to_mask_hex(" 1 , 3 ,"), "0a");
  EXPECT_THAT(error_of([] { cpu_list_to_mask_hex(""); }), HasSubstr("empty value"));
  EXPECT_THAT(error_of([] { cpu_list_to_mask_hex("3-1"); }), HasSubstr("invalid range"));
}

TEST(CgroupSystemd, Properties) {
  auto props = systemd_resource_properties(json::parse(R"({
      "memory": {"limit": 1073741824, "reservation": 1048576, "swap": 2147483648},
      "cpu": {"shares": 1024, "quota": 33333, "period": 100000, "cpus": "0-1", "mems": "0"},
      "pids": {"limit": 100}, "blockIO": {"weight": 500}})"));
  EXPECT_THAT(props, ::testing::ElementsAre(
                         "MemoryMax=t:1073741824", "MemoryLow=t:1048576", "MemorySwapMax=t:1073741824",
                         "CPUWeight=t:39", "CPUQuotaPeriodUSec=t:100000",
                         "CPUQuotaPerSecUSec=t:340000", // 333330 rounded up to whole percents
                         "AllowedCPUs=ay:03", "AllowedMemoryNodes=ay:01", "TasksMax=t:100", "IOWeight=t:4950"));
  EXPECT_THAT(systemd_resource_properties(json::parse(R"({"memory": {"limit": -1}, "cpu": {"quota": -1},
                                                          "pids": {"limit": -1}})")),
              ::testing::ElementsAre("MemoryMax=t:infinity", "MemorySwapMax=t:infinity",
                                     "CPUQuotaPerSecUSec=t:infinity", "TasksMax=t:infinity"));
  auto args = systemd_start_arguments(systemd_scope_for("", "c1"), "c1", 0, json::parse(R"({"pids": {"limit": 5}})"));
  std::string all;
  for (auto& a : args) all += a + " ";
  EXPECT_THAT(all, HasSubstr("start-scope --unit berth-c1.scope --slice system.slice --description berth container c1 "
                             "--hold --property Delegate=b:true --property DefaultDependencies=b:false"));
  EXPECT_THAT(all, HasSubstr("--property TasksMax=t:5"));
  args = systemd_start_arguments(systemd_scope_for("", "c1"), "c1", 42, json());
  EXPECT_THAT(args, ::testing::Contains("42"));
}

TEST(CgroupSystemd, ClearErrorWithoutSystemd) {
  if (path_exists("/run/systemd/system")) GTEST_SKIP() << "systemd runs here";
  EXPECT_THAT(error_of([] { Cgroup::create_systemd("", "x", json()); }),
              HasSubstr("systemd not running on this host, cannot use systemd cgroups manager"));
  EXPECT_FALSE(systemd_driver_available());
}
