#include <gtest/gtest.h>

#include "agent/lib/manifest.hpp"
#include "agent/lib/pod_status.hpp"

using namespace berth::agent;

namespace {

Pod make_pod(const std::string& restart_policy, bool with_init) {
  std::string text = "kind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: " + restart_policy + "\n";
  if (with_init) text += "  initContainers: [{name: init, image: busybox:1}]\n";
  text += "  containers: [{name: a, image: busybox:1}, {name: b, image: busybox:1}]\n";
  return manifest_from_text("/m/p.yaml", text, "n").pod;
}

ContainerInstance inst(const std::string& id, uint32_t attempt, cri::ContainerState state, int exit_code = 0) {
  ContainerInstance i;
  i.id = id;
  i.attempt = attempt;
  i.status.set_state(state);
  i.status.set_exit_code(exit_code);
  i.status.set_started_at(1700000000000000000);
  if (state == cri::CONTAINER_EXITED) i.status.set_finished_at(1700000001000000000);
  i.status.set_image_ref("sha256:abc");
  return i;
}

const PodCondition& cond(const PodStatus& st, const std::string& type) {
  for (auto& c : st.conditions)
    if (c.type == type) return c;
  throw std::runtime_error("no condition " + type);
}

} // namespace

TEST(PodStatus, RunningAndReadyFollowProbes) {
  auto pod = make_pod("Always", false);
  PodView v;
  v.sandbox_ready = true;
  v.pod_ip = "10.1.0.2";
  v.instances["a"] = {inst("ca", 0, cri::CONTAINER_RUNNING)};
  v.instances["b"] = {inst("cb", 0, cri::CONTAINER_RUNNING)};
  v.ready["b"] = false;
  auto st = compute_pod_status(pod, v, "containerd", nullptr);
  EXPECT_EQ(st.phase, "Running");
  EXPECT_EQ(st.pod_ip, "10.1.0.2");
  EXPECT_TRUE(st.container_statuses[0].ready);
  EXPECT_EQ(st.container_statuses[0].container_id, "containerd://ca");
  EXPECT_FALSE(st.container_statuses[1].ready);
  EXPECT_FALSE(cond(st, "Ready").status);
  EXPECT_EQ(cond(st, "Ready").message, "containers with unready status: [b]");
  EXPECT_TRUE(cond(st, "PodReadyToStartContainers").status);
  v.ready["b"] = true;
  auto st2 = compute_pod_status(pod, v, "containerd", &st);
  EXPECT_TRUE(cond(st2, "Ready").status);
  EXPECT_EQ(cond(st2, "PodScheduled").last_transition_time, cond(st, "PodScheduled").last_transition_time);
}

TEST(PodStatus, CrashLoopShowsWaitingWithLastState) {
  auto pod = make_pod("Always", false);
  PodView v;
  v.sandbox_ready = true;
  v.instances["a"] = {inst("a2", 2, cri::CONTAINER_EXITED, 1), inst("a1", 1, cri::CONTAINER_EXITED, 1)};
  v.instances["b"] = {inst("cb", 0, cri::CONTAINER_RUNNING)};
  v.waiting["a"] = {"CrashLoopBackOff", "back-off 20s restarting failed container=a"};
  auto st = compute_pod_status(pod, v, "containerd", nullptr);
  auto& a = st.container_statuses[0];
  EXPECT_EQ(a.state.kind, ContainerState::Kind::waiting);
  EXPECT_EQ(a.state.reason, "CrashLoopBackOff");
  EXPECT_EQ(a.last_state.kind, ContainerState::Kind::terminated);
  EXPECT_EQ(a.last_state.exit_code, 1);
  EXPECT_EQ(a.last_state.reason, "Error");
  EXPECT_EQ(a.restart_count, 2);
  EXPECT_EQ(st.phase, "Running");
  auto j = to_json(st);
  EXPECT_EQ(j["containerStatuses"][0]["state"]["waiting"]["reason"], "CrashLoopBackOff");
  EXPECT_EQ(j["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 1);
}

TEST(PodStatus, InitContainersGatePhaseAndInitialized) {
  auto pod = make_pod("Always", true);
  PodView v;
  v.sandbox_ready = true;
  v.instances["init"] = {inst("i", 0, cri::CONTAINER_RUNNING)};
  auto st = compute_pod_status(pod, v, "containerd", nullptr);
  EXPECT_EQ(st.phase, "Pending");
  EXPECT_FALSE(cond(st, "Initialized").status);
  EXPECT_EQ(cond(st, "Initialized").message, "containers with incomplete status: [init]");
  EXPECT_EQ(st.container_statuses[0].state.reason, "PodInitializing");
  v.instances["init"] = {inst("i", 0, cri::CONTAINER_EXITED, 0)};
  st = compute_pod_status(pod, v, "containerd", nullptr);
  EXPECT_TRUE(cond(st, "Initialized").status);
  EXPECT_EQ(st.container_statuses[0].state.reason, "ContainerCreating");
  EXPECT_TRUE(st.init_container_statuses[0].ready);
}

TEST(PodStatus, TerminalPhasesFollowTheRestartPolicy) {
  for (auto [policy, code_a, phase] : std::vector<std::tuple<std::string, int, std::string>>{
           {"Never", 0, "Succeeded"}, {"Never", 3, "Failed"}, {"OnFailure", 0, "Succeeded"}}) {
    auto pod = make_pod(policy, false);
    PodView v;
    v.sandbox_ready = true;
    v.instances["a"] = {inst("a", 0, cri::CONTAINER_EXITED, code_a)};
    v.instances["b"] = {inst("b", 0, cri::CONTAINER_EXITED, 0)};
    auto st = compute_pod_status(pod, v, "containerd", nullptr);
    EXPECT_EQ(st.phase, phase) << policy << " " << code_a;
    EXPECT_EQ(cond(st, "Ready").reason, "PodCompleted");
  }
  EXPECT_TRUE(should_restart("Always", 0));
  EXPECT_TRUE(should_restart("OnFailure", 1));
  EXPECT_FALSE(should_restart("OnFailure", 0));
  EXPECT_FALSE(should_restart("Never", 1));
}
