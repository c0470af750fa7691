// Exit status, OOM counters, and the command line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "shim/lib/exit_status.hpp"
#include "shim/lib/oom.hpp"
#include "shim/lib/options.hpp"
#include "shim/lib/process.hpp"

using namespace berth::shim;

TEST(ExitStatus, CodeAndSignal) {
  struct timespec ts {0, 123};
  auto exited = ExitStatus::from_wait_status(3 << 8, ts); // WEXITSTATUS 3
  EXPECT_EQ(exited.exit_code, 3);
  EXPECT_EQ(exited.signal, 0);
  EXPECT_EQ(exited.exited_at, "1970-01-01T00:00:00.000000123Z");
  auto killed = ExitStatus::from_wait_status(SIGKILL, ts);
  EXPECT_EQ(killed.exit_code, 137);
  EXPECT_EQ(killed.signal, SIGKILL);
  killed.oom_killed = true;
  EXPECT_EQ(killed.to_json(),
            R"({"exit_code":137,"signal":9,"oom_killed":true,"exited_at":"1970-01-01T00:00:00.000000123Z"})");
  auto back = ExitStatus::parse(killed.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->exit_code, 137);
  EXPECT_TRUE(back->oom_killed);
  EXPECT_FALSE(ExitStatus::parse("{\"exit_code\":1}"));
}

TEST(Timestamp, FixedWidthUtc) {
  char out[kTimestampLen + 1];
  format_timestamp({1700000000, 999999999}, out);
  EXPECT_STREQ(out, "2023-11-14T22:13:20.999999999Z");
  format_timestamp({951782400, 0}, out); // 2000-02-29
  EXPECT_STREQ(out, "2000-02-29T00:00:00.000000000Z");
}

TEST(Oom, ParsesV2AndV1Counters) {
  EXPECT_EQ(parse_oom_kill("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"), 1u);
  EXPECT_EQ(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), 7u);
  EXPECT_FALSE(parse_oom_kill("low 0\nhigh 0\n"));
  EXPECT_FALSE(parse_oom_kill(""));
}

TEST(Oom, WatchCountsFromTheBaseline) {
  char tmpl[] = "/tmp/memory.events-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  berth::write_file(tmpl, "oom 1\noom_kill 1\n");
  OomWatch w(tmpl);
  EXPECT_GE(w.fd(), 0);
  EXPECT_FALSE(w.oom_killed());
  berth::write_file(tmpl, "oom 2\noom_kill 2\n");
  w.refresh();
  EXPECT_TRUE(w.oom_killed());
  EXPECT_EQ(w.kills(), 1u);
  ::unlink(tmpl);
  w.refresh(); // the file (cgroup) is gone: the count stands
  EXPECT_TRUE(w.oom_killed());
}

TEST(Options, RunAndClientCommands) {
  const char* argv[] = {"berth-shim", "--id", "c1", "--bundle=/b", "--runtime-arg", "--root", "--runtime-arg=/r",
                        "--stdin-once", "--log-path", "/l"};
  auto cl = parse_command_line(10, const_cast<char**>(argv));
  EXPECT_EQ(cl.kind, CommandLine::Kind::run);
  EXPECT_EQ(cl.shim.id, "c1");
  EXPECT_EQ(cl.shim.bundle, "/b");
  EXPECT_EQ(cl.shim.runtime_args, (std::vector<std::string>{"--root", "/r"}));
  EXPECT_TRUE(cl.shim.stdin_pipe);

  const char* exec_argv[] = {"berth-shim", "exec", "--state-dir", "/s", "-t", "c1", "--", "sh", "-c", "x"};
  cl = parse_command_line(10, const_cast<char**>(exec_argv));
  EXPECT_EQ(cl.kind, CommandLine::Kind::client);
  EXPECT_EQ(cl.client.id, "c1");
  EXPECT_TRUE(cl.client.tty);
  EXPECT_EQ(cl.client.args, (std::vector<std::string>{"sh", "-c", "x"}));
}

TEST(Options, BadInput) {
  const char* no_bundle[] = {"berth-shim", "--id", "c1"};
  EXPECT_THROW(parse_command_line(3, const_cast<char**>(no_bundle)), berth::Error);
  const char* bad_id[] = {"berth-shim", "--id", "../x", "--bundle", "/b"};
  EXPECT_THROW(parse_command_line(5, const_cast<char**>(bad_id)), berth::Error);
  const char* unknown[] = {"berth-shim", "state", "--bogus", "c1"};
  EXPECT_THROW(parse_command_line(4, const_cast<char**>(unknown)), berth::Error);
}

TEST(Runtime, FailureMessages) {
  RunResult r;
  r.wait_status = 1 << 8;
  r.output = "time=\"2026-01-01T00:00:00Z\" level=error msg=\"container does not exist\"\n";
  EXPECT_EQ(describe_runtime_failure("runtime create", r, "/nonexistent"),
            "runtime create failed: container does not exist");
  r.output.clear();
  EXPECT_EQ(describe_runtime_failure("runtime create", r, "/nonexistent"), "runtime create failed: exit status 1");
  r.timed_out = true;
  EXPECT_EQ(describe_runtime_failure("runtime create", r, "/nonexistent"),
            "runtime create timed out (the runtime was killed)");
}
