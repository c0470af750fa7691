// Pod cgroup names and limits (agent/lib/pod_cgroup.cpp), against the kubelet's
// ResourceConfigForPod and its systemd slice names. Making the cgroups is tested for
// real in tests/vm/test_systemd_node.py (systemd) and tests/agent (cgroupfs).
#include <gtest/gtest.h>

#include "agent/lib/config.hpp"
#include "agent/lib/manifest.hpp"
#include "agent/lib/pod_cgroup.hpp"
#include "common/error.hpp"

using namespace berth::agent;

namespace {
Pod pod_with(const std::string& containers) {
  return manifest_from_text("/m/p.yaml", "kind: Pod\nmetadata: {name: p, uid: 1a-2b}\nspec:\n" + containers, "n1").pod;
}
} // namespace

TEST(PodCgroup, ParentNamesPerDriverAndQos) {
  Config cfg;
  auto burstable = pod_with("  containers: [{name: a, image: i, resources: {limits: {memory: 64Mi}}}, {name: b, image: i}]\n");
  auto guaranteed = pod_with("  containers: [{name: a, image: i, resources: {limits: {memory: 64Mi, cpu: 1}}}]\n");
  auto besteffort = pod_with("  containers: [{name: a, image: i}]\n");
  EXPECT_EQ(pod_cgroup_parent(cfg, burstable), "/kubepods/burstable/pod1a-2b");
  EXPECT_EQ(pod_cgroup_parent(cfg, guaranteed), "/kubepods/pod1a-2b");
  cfg.cgroup_driver = CgroupDriver::systemd;
  EXPECT_EQ(pod_cgroup_parent(cfg, burstable), "kubepods-burstable-pod1a_2b.slice");
  EXPECT_EQ(pod_cgroup_parent(cfg, guaranteed), "kubepods-pod1a_2b.slice");
  EXPECT_EQ(pod_cgroup_parent(cfg, besteffort), "kubepods-besteffort-pod1a_2b.slice");
  cfg.cgroup_root = "/node.slice";
  EXPECT_EQ(pod_cgroup_parent(cfg, guaranteed), "node-kubepods-pod1a_2b.slice");
  EXPECT_EQ(slice_path("kubepods-burstable-pod1a_2b.slice"),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a_2b.slice");
  EXPECT_EQ(slice_path("kubepods.slice"), "/kubepods.slice");
}

TEST(PodCgroup, LimitsAreSummedOnlyWhenEveryContainerHasOne) {
  auto both = pod_cgroup_resources(pod_with(
      "  containers:\n"
      "  - {name: a, image: i, resources: {requests: {cpu: 100m}, limits: {cpu: 500m, memory: 64Mi}}}\n"
      "  - {name: b, image: i, resources: {limits: {cpu: 250m, memory: 32Mi}}}\n").spec);
  EXPECT_EQ(both.memory_max, 96LL << 20);
  EXPECT_EQ(both.cpu_quota_us, 75000);  // 750m of a 100 ms period
  EXPECT_EQ(both.cpu_period_us, 100000);
  EXPECT_EQ(both.cpu_shares, 358u);     // (100m + 250m request from the limit) * 1024 / 1000

  auto partial = pod_cgroup_resources(pod_with(
      "  containers:\n"
      "  - {name: a, image: i, resources: {limits: {memory: 64Mi}}}\n"
      "  - {name: b, image: i, resources: {requests: {cpu: 200m}}}\n").spec);
  EXPECT_FALSE(partial.memory_max);
  EXPECT_FALSE(partial.cpu_quota_us);
  EXPECT_EQ(partial.cpu_shares, 204u);

  // An init container larger than the sum of the others sets the pod's limit.
  auto init = pod_cgroup_resources(pod_with(
      "  initContainers: [{name: i, image: i, resources: {limits: {cpu: 2, memory: 1Gi}}}]\n"
      "  containers: [{name: a, image: i, resources: {limits: {cpu: 500m, memory: 64Mi}}}]\n").spec);
  EXPECT_EQ(init.memory_max, 1LL << 30);
  EXPECT_EQ(init.cpu_quota_us, 200000);

  auto none = pod_cgroup_resources(pod_with("  containers: [{name: a, image: i}]\n").spec);
  EXPECT_EQ(none.cpu_shares, 2u);
  EXPECT_FALSE(none.memory_max);
  EXPECT_FALSE(none.cpu_quota_us);
}

TEST(PodCgroup, CpuWeightFromShares) {
  EXPECT_EQ(cpu_weight_from_shares(2), 1u);
  EXPECT_EQ(cpu_weight_from_shares(1024), 39u);
  EXPECT_EQ(cpu_weight_from_shares(262144), 10000u);
}

TEST(PodCgroup, DriverInConfig) {
  const std::string h = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";
  auto c = config_from_yaml(h + "cgroupDriver: systemd\n", "cfg");
  EXPECT_EQ(c.cgroup_driver, CgroupDriver::systemd);
  try {
    config_from_yaml(h + "cgroupDriver: system\n", "cfg.yaml");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_STREQ(e.what(), "cfg.yaml:3: cgroupDriver: cgroup driver \"system\": must be cgroupfs or systemd");
  }
  auto nested = config_from_yaml(h + "cgroupDriver: systemd\ncgroupRoot: /a/b.slice\n", "cfg");
  EXPECT_THROW(finalize_config(nested), berth::Error);
  auto slice = config_from_yaml(h + "cgroupDriver: systemd\ncgroupRoot: /node.slice\n", "cfg");
  EXPECT_NO_THROW(finalize_config(slice));
}
