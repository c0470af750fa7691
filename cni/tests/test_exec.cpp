// Plugin runs: a timeout kills the plugin's whole process group, and a caller
// that is a child subreaper gets back no zombie from what a plugin left behind,
// and a plugin that never reads its stdin cannot block the caller past the deadline.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "cni/lib/exec.hpp"

namespace {

using namespace berth;
using namespace berth::cni;
using namespace std::chrono_literals;

struct Script {
  std::string path;
  explicit Script(const std::string& body) {
    char dir[] = "/tmp/cni-exec-test-XXXXXX";
    path = std::string(::mkdtemp(dir)) + "/plugin";
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0755);
  }
  ~Script() { std::filesystem::remove_all(std::filesystem::path(path).parent_path()); }
};

// Gone, or a zombie of someone else (init reaps it in its own time).
bool dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && line.substr(close_paren + 2, 1) == "Z";
}

TEST(Exec, TimeoutKillsThePluginsWholeProcessGroup) {
  Script s("sleep 1000 &\necho $! >&2\nexec sleep 1000\n");
  CommandResult r = run_command(s.path, {}, {.input = "", .timeout = 300ms});
  EXPECT_TRUE(r.timed_out);
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGKILL);
  pid_t grandchild = std::stoi(r.err);
  // SIGKILL is delivered at once; the loop only waits for init's reaping.
  for (int i = 0; i < 500 && !dead(grandchild); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(dead(grandchild)) << "the plugin's background child survived the timeout";
}

TEST(Exec, SubreaperCallerReapsWhatThePluginLeftBehind) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  // Like berth-bridge's DEL child: outlives the plugin, holds none of its pipes.
  Script s("(sleep 0.2; exit 3) </dev/null >/dev/null 2>&1 &\necho $!\n");
  CommandResult r = run_command(s.path, {}, {.input = "", .timeout = 10s});
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_FALSE(r.timed_out);
  ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.err;
  pid_t left = std::stoi(r.out);
  EXPECT_EQ(::kill(left, 0), -1) << "process " << left << " left behind (zombie or alive)";
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "a child is left to reap";
  EXPECT_EQ(errno, ECHILD);
}

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(Exec, NoFdOrChildLeftAfterAnyOutcome) {
  Script ok("cat\n"), fails("echo oops >&2\nexit 3\n"), slow("exec sleep 1000\n");
  const std::string big_input(1 << 20, 'x');
  size_t before = open_fds();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(run_command(ok.path, {}, {.input = "in", .timeout = 10s}).out, "in");
    EXPECT_EQ(WEXITSTATUS(run_command(fails.path, {}, {.input = "", .timeout = 10s}).status), 3);
    EXPECT_TRUE(run_command(slow.path, {}, {.input = big_input, .timeout = 100ms}).timed_out);
  }
  EXPECT_EQ(open_fds(), before);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
}

TEST(Exec, PluginErrorObjectBecomesPluginError) {
  Script s("cat >/dev/null\necho '{\"cniVersion\":\"1.1.0\",\"code\":7,\"msg\":\"bad field\",\"details\":\"d\"}'\nexit 1\n");
  PluginInvocation inv;
  inv.command = "ADD";
  try {
    run_plugin(s.path, inv, "{}", 10s);
    FAIL() << "no error";
  } catch (const PluginError& e) {
    EXPECT_EQ(e.cni_code(), 7u);
    EXPECT_EQ(e.details(), "d");
    EXPECT_NE(std::string(e.what()).find("bad field"), std::string::npos);
  }
}

} // namespace
