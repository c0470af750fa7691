// Hooks, ptys and unix-socket fd passing, against the real kernel (run as root).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/hooks.hpp"
#include "runtime/lib/terminal.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

using berth::test_support::TempDir;

std::string parse_error(const std::string& text) {
  json j = json::parse(text);
  try {
    parse_hooks(JsonView(j, "")["hooks"]);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

Hook shell_hook(const std::string& script, std::optional<int> timeout = std::nullopt) {
  return Hook{"/bin/sh", {"sh", "-c", script}, {}, timeout};
}

std::string run_error(const std::vector<Hook>& hooks, const std::string& state = "{}") {
  try {
    run_hooks(hooks, "createRuntime", state);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

size_t open_fd_count() {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n++;
  return n;
}

// True when this process has no children left, reaped or not.
bool no_children() {
  errno = 0;
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

// Reads from fd until `want` appears or a few seconds pass.
std::string read_until(int fd, const std::string& want) {
  std::string got;
  char buf[256];
  for (int i = 0; i < 50 && got.find(want) == std::string::npos; i++) {
    struct pollfd p {fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

} // namespace

// ---- parsing ----------------------------------------------------------------

TEST(HookParse, ParsesEveryStage) {
  json j = json::parse(R"({"hooks": {
    "prestart": [{"path": "/bin/a"}],
    "createRuntime": [{"path": "/bin/b", "args": ["b", "-x"], "env": ["K=V"], "timeout": 5}],
    "createContainer": [{"path": "/bin/c"}, {"path": "/bin/c2"}],
    "startContainer": [{"path": "/bin/d"}],
    "poststart": [{"path": "/bin/e"}],
    "poststop": [{"path": "/bin/f"}],
    "futureStage": [{"path": "relative is fine here: ignored"}]
  }})");
  Hooks h = parse_hooks(JsonView(j, "")["hooks"]);
  ASSERT_EQ(h.prestart.size(), 1u);
  EXPECT_EQ(h.prestart[0].path, "/bin/a");
  EXPECT_FALSE(h.prestart[0].timeout);
  ASSERT_EQ(h.create_runtime.size(), 1u);
  EXPECT_EQ(h.create_runtime[0].args, (std::vector<std::string>{"b", "-x"}));
  EXPECT_EQ(h.create_runtime[0].env, (std::vector<std::string>{"K=V"}));
  EXPECT_EQ(h.create_runtime[0].timeout, 5);
  ASSERT_EQ(h.create_container.size(), 2u);
  EXPECT_EQ(h.create_container[1].path, "/bin/c2");
  EXPECT_EQ(h.start_container.size(), 1u);
  EXPECT_EQ(h.poststart.size(), 1u);
  EXPECT_EQ(h.poststop[0].path, "/bin/f");
  EXPECT_FALSE(h.empty());
}

TEST(HookParse, AbsentIsEmpty) {
  json j = json::parse(R"({})");
  EXPECT_TRUE(parse_hooks(JsonView(j, "")["hooks"]).empty());
}

TEST(HookParse, ErrorsNameTheField) {
  EXPECT_EQ(parse_error(R"({"hooks": {"poststart": [{"path": "hook"}]}})"),
            "hooks.poststart[0].path: must be an absolute path");
  EXPECT_EQ(parse_error(R"({"hooks": {"prestart": [{"args": ["x"]}]}})"),
            "hooks.prestart[0].path: is required");
  EXPECT_EQ(parse_error(R"({"hooks": {"createRuntime": [{"path": "/a"}, {"path": "/b", "timeout": 0}]}})"),
            "hooks.createRuntime[1].timeout: must be greater than zero, got 0");
  EXPECT_THAT(parse_error(R"({"hooks": {"poststop": [{"path": "/a", "timeout": "5"}]}})"),
              StartsWith("hooks.poststop[0].timeout: expected an integer"));
  EXPECT_THAT(parse_error(R"({"hooks": {"poststop": [{"path": "/a", "args": "x"}]}})"),
              StartsWith("hooks.poststop[0].args: expected an array"));
  EXPECT_THAT(parse_error(R"({"hooks": {"startContainer": [{"path": "/a", "env": [1]}]}})"),
              StartsWith("hooks.startContainer[0].env[0]: expected a string"));
  EXPECT_THAT(parse_error(R"({"hooks": {"poststart": {"path": "/a"}}})"),
              StartsWith("hooks.poststart: expected an array"));
  EXPECT_THAT(parse_error(R"({"hooks": {"poststart": ["/a"]}})"),
              StartsWith("hooks.poststart[0]: expected an object"));
  EXPECT_THAT(parse_error(R"({"hooks": []})"), StartsWith("hooks: expected an object"));
}

// ---- running ----------------------------------------------------------------

TEST(HookRun, StateArrivesOnStdin) {
  TempDir dir;
  std::string state = R"({"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"})";
  run_hooks({shell_hook("cat > " + dir.file("state"))}, "prestart", state);
  EXPECT_EQ(read_file(dir.file("state")), state);
  EXPECT_TRUE(no_children());
}

TEST(HookRun, LargeStateLargerThanPipeBuffer) {
  TempDir dir;
  std::string state = "{\"pad\":\"" + std::string(1 << 20, 'x') + "\"}";
  run_hooks({shell_hook("cat > " + dir.file("state"))}, "prestart", state);
  EXPECT_EQ(read_file(dir.file("state")), state);
}

TEST(HookRun, HookThatIgnoresStdinIsFineAndSigpipeIsSwallowed) {
  std::string state(1 << 20, 'x'); // far more than the pipe holds
  run_hooks({Hook{"/bin/true", {}, {}, std::nullopt}}, "poststop", state);
  sigset_t pending, mask;
  ::sigpending(&pending);
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  EXPECT_FALSE(sigismember(&mask, SIGPIPE));
  EXPECT_TRUE(no_children());
}

TEST(HookRun, FailureReportsExitStatusAndOutput) {
  size_t fds_before = open_fd_count();
  std::string msg = run_error({shell_hook("echo boom >&2; exit 3")});
  EXPECT_EQ(open_fd_count(), fds_before);
  EXPECT_EQ(msg, "createRuntime hook #0 (/bin/sh): exit status 3: boom");
  EXPECT_TRUE(no_children());
}

TEST(HookRun, StdoutIsCapturedToo) {
  EXPECT_THAT(run_error({shell_hook("echo from-stdout; exit 1")}), HasSubstr("exit status 1: from-stdout"));
}

TEST(HookRun, HugeOutputIsBoundedAndKeepsTheTail) {
  std::string msg = run_error({shell_hook("head -c 1000000 /dev/zero | tr '\\0' a; echo; echo the-end; exit 2")});
  EXPECT_THAT(msg, HasSubstr("exit status 2: ..."));
  EXPECT_THAT(msg, HasSubstr("the-end"));
  EXPECT_LT(msg.size(), 70u * 1024);
}

TEST(HookRun, KilledBySignal) {
  EXPECT_EQ(run_error({shell_hook("kill -TERM $$")}),
            "createRuntime hook #0 (/bin/sh): killed by signal SIGTERM");
}

TEST(HookRun, TimeoutKillsAndReaps) {
  size_t fds_before = open_fd_count();
  auto start = std::chrono::steady_clock::now();
  std::string msg = run_error({Hook{"/bin/sleep", {"sleep", "5"}, {}, 1}});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(msg, "createRuntime hook #0 (/bin/sleep): timed out after 1s");
  EXPECT_EQ(open_fd_count(), fds_before);
  EXPECT_GE(elapsed, std::chrono::milliseconds(900));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2500));
  EXPECT_TRUE(no_children());
}

TEST(HookRun, DoesNotWaitForOutputHeldByADaemon) {
  // The hook exits at once but leaves a grandchild holding its stdout.
  auto start = std::chrono::steady_clock::now();
  run_hooks({shell_hook("sleep 3 & exit 0")}, "poststart", "{}");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  EXPECT_TRUE(no_children());
}

TEST(HookRun, MissingBinaryReportsExecError) {
  size_t fds_before = open_fd_count();
  std::string msg = run_error({Hook{"/nonexistent/hook", {}, {}, std::nullopt}});
  EXPECT_EQ(open_fd_count(), fds_before);
  EXPECT_EQ(msg, "createRuntime hook #0 (/nonexistent/hook): exec: no such file or directory");
  EXPECT_TRUE(no_children());
}

TEST(HookRun, EnvIsPassedExactly) {
  TempDir dir;
  // /proc/$$/environ is exactly what execve gave the shell.
  std::string dump = "/usr/bin/tr '\\0' '\\n' < /proc/$$/environ > " + dir.file("env");
  Hook with_env = shell_hook(dump);
  with_env.env = {"A=1", "B=two words", "PATH=/x"};
  run_hooks({with_env}, "createContainer", "{}");
  EXPECT_EQ(read_file(dir.file("env")), "A=1\nB=two words\nPATH=/x\n");

  // No env in the config: an empty environment, not ours.
  run_hooks({shell_hook(dump)}, "createContainer", "{}");
  EXPECT_EQ(read_file(dir.file("env")), "");
}

TEST(HookRun, ArgsAreArgvIncludingArgv0) {
  TempDir dir;
  std::string script = "/usr/bin/tr '\\0' ' ' < /proc/$$/cmdline > " + dir.file("out");
  run_hooks({Hook{"/bin/sh", {"custom-name", "-c", script, "x", "y"}, {}, {}}}, "prestart", "{}");
  EXPECT_EQ(read_file(dir.file("out")), "custom-name -c " + script + " x y ");
}

TEST(HookRun, RunsInOrderAndStopsAtFirstFailure) {
  TempDir dir;
  std::string log = dir.file("log");
  std::vector<Hook> hooks = {shell_hook("echo 1 >> " + log), shell_hook("echo 2 >> " + log),
                             shell_hook("echo 3 >> " + log)};
  run_hooks(hooks, "poststart", "{}");
  EXPECT_EQ(read_file(log), "1\n2\n3\n");

  hooks[1] = shell_hook("exit 1");
  EXPECT_THAT(run_error(hooks), StartsWith("createRuntime hook #1 (/bin/sh): exit status 1"));
  EXPECT_EQ(read_file(log), "1\n2\n3\n1\n");
}

TEST(HookRun, ChildGetsOnlyStdioAndCleanSignalState) {
  UniqueFd leaked(::fcntl(STDERR_FILENO, F_DUPFD, 50)); // no FD_CLOEXEC on purpose
  ASSERT_TRUE(leaked);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &usr1, &old);
  auto old_handler = ::signal(SIGUSR2, SIG_IGN);

  // No redirections in the shell: dash parks saved fds at 10+ while redirecting. The
  // listings come back through the captured output of a failing hook.
  std::string fds = run_error({shell_hook("ls /proc/$$/fd; exit 1")});
  // grep itself, not a shell (dash blocks signals around its own waits); the missing
  // file makes it fail.
  std::string sig = run_error({Hook{"/bin/grep", {"grep", "-h", "^Sig[BI]", "/proc/self/status", "/missing"}, {}, {}}});

  ::signal(SIGUSR2, old_handler);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_THAT(fds, HasSubstr("exit status 1: 0\n1\n2"));
  EXPECT_THAT(fds, testing::EndsWith("\n2"));
  EXPECT_THAT(sig, HasSubstr("SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000"));
}

TEST(HookRun, EmptyListDoesNothing) { run_hooks({}, "poststop", "{}"); }

// ---- terminal ---------------------------------------------------------------

TEST(Terminal, OpenPtyGivesAWorkingPair) {
  PtyPair pty = open_pty();
  ASSERT_TRUE(pty.master);
  ASSERT_TRUE(pty.slave);
  EXPECT_TRUE(::isatty(pty.slave.get()));
  EXPECT_TRUE(::fcntl(pty.master.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(pty.slave.get(), F_GETFD) & FD_CLOEXEC);
  write_all(pty.slave.get(), "hello\n");
  EXPECT_THAT(read_until(pty.master.get(), "hello\r\n"), HasSubstr("hello\r\n")); // ONLCR
  write_all(pty.master.get(), "typed\n");
  EXPECT_THAT(read_until(pty.slave.get(), "typed\n"), HasSubstr("typed\n"));
}

TEST(Terminal, WindowSizeReadsBack) {
  PtyPair pty = open_pty();
  set_window_size(pty.master.get(), 40, 132);
  struct winsize ws {};
  ASSERT_EQ(::ioctl(pty.slave.get(), TIOCGWINSZ, &ws), 0);
  EXPECT_EQ(ws.ws_row, 40);
  EXPECT_EQ(ws.ws_col, 132);
}

TEST(Terminal, RelayCopiesBothWaysUntilHangup) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  pid_t relay = ::fork();
  ASSERT_GE(relay, 0);
  if (relay == 0) {
    ::alarm(10); // never hang the test run
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::close(in[0]); ::close(in[1]); ::close(out[0]); ::close(out[1]);
    try {
      PtyPair pty = open_pty();
      pid_t shell = ::fork();
      if (shell == 0) {
        pty.master.reset();
        make_controlling_terminal(pty.slave.get());
        // The tty must be our controlling terminal for /dev/tty to open.
        ::execl("/bin/sh", "sh", "-c", "read line < /dev/tty; echo \"got:$line\"", nullptr);
        ::_exit(127);
      }
      pty.slave.reset();
      relay_pty(pty.master.get());
      int status = 0;
      ::waitpid(shell, &status, 0);
      ::_exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 2);
    } catch (...) {
      ::_exit(3);
    }
  }
  ::close(in[0]);
  ::close(out[1]);
  write_all(in[1], "abc\n");
  ::close(in[1]); // stdin EOF must not stop the relay before the output is drained
  std::string output;
  char buf[256];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(relay, &status, 0), relay);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_THAT(output, HasSubstr("got:abc\r\n"));
}

TEST(Terminal, RelayRawModeWindowSizeAndRestore) {
  // Our "user terminal" is another pty: the relay sees a tty on stdin/stdout.
  PtyPair user = open_pty();
  set_window_size(user.master.get(), 33, 77);
  pid_t relay = ::fork();
  ASSERT_GE(relay, 0);
  if (relay == 0) {
    ::alarm(10);
    ::dup2(user.slave.get(), 0);
    ::dup2(user.slave.get(), 1);
    struct termios before {}, after {};
    ::tcgetattr(0, &before);
    try {
      PtyPair pty = open_pty();
      pid_t shell = ::fork();
      if (shell == 0) {
        pty.master.reset();
        make_controlling_terminal(pty.slave.get());
        ::execl("/bin/sh", "sh", "-c", "stty size; read x; stty size", nullptr);
        ::_exit(127);
      }
      pty.slave.reset();
      relay_pty(pty.master.get());
      ::waitpid(shell, nullptr, 0);
    } catch (...) {
      ::_exit(3);
    }
    ::tcgetattr(0, &after);
    bool restored = before.c_lflag == after.c_lflag && before.c_iflag == after.c_iflag &&
                    before.c_oflag == after.c_oflag;
    sigset_t mask;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    ::_exit(restored && !sigismember(&mask, SIGWINCH) ? 0 : 4);
  }
  user.slave.reset();
  EXPECT_THAT(read_until(user.master.get(), "33 77"), HasSubstr("33 77"));
  set_window_size(user.master.get(), 44, 88);
  ::kill(relay, SIGWINCH); // the user tty is not the helper's controlling tty
  write_all(user.master.get(), "\r");
  EXPECT_THAT(read_until(user.master.get(), "44 88"), HasSubstr("44 88"));
  int status = 0;
  ASSERT_EQ(::waitpid(relay, &status, 0), relay);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

// ---- unix sockets -----------------------------------------------------------

TEST(UnixSocket, SendRecvFdWithPayload) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd pipe_r(p[0]), pipe_w(p[1]);

  send_fd(a.get(), pipe_w.get(), "/dev/ptmx");
  std::string payload;
  UniqueFd got = recv_fd(b.get(), &payload);
  EXPECT_EQ(payload, "/dev/ptmx");
  ASSERT_TRUE(got);
  EXPECT_NE(got.get(), pipe_w.get());
  EXPECT_TRUE(::fcntl(got.get(), F_GETFD) & FD_CLOEXEC);
  pipe_w.reset();
  write_all(got.get(), "through");
  got.reset();
  EXPECT_EQ(read_until(pipe_r.get(), "through"), "through");
}

TEST(UnixSocket, EmptyPayloadAndClosedPeer) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  send_fd(a.get(), STDIN_FILENO, "");
  std::string payload = "stale";
  EXPECT_TRUE(recv_fd(b.get(), &payload));
  EXPECT_EQ(payload, "");

  a.reset();
  try {
    recv_fd(b.get());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("peer closed"));
  }
}

TEST(UnixSocket, ConnectLongPathThroughProc) {
  TempDir dir;
  std::string deep = dir.path();
  while (deep.size() < 150) {
    deep += "/" + std::string(40, 'd');
    ASSERT_EQ(::mkdir(deep.c_str(), 0700), 0);
  }
  std::string path = deep + "/console.sock";
  ASSERT_GT(path.size(), sizeof(sockaddr_un::sun_path));

  // Bind through /proc/self/fd as well; the plain path would not fit either.
  UniqueFd dirfd(::open(deep.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::string via = "/proc/self/fd/" + std::to_string(dirfd.get()) + "/console.sock";
  std::memcpy(addr.sun_path, via.c_str(), via.size() + 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(listener.get(), 1), 0);

  UniqueFd client = connect_unix(path);
  UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server);
  send_fd(client.get(), STDOUT_FILENO, "/dev/pts/7");
  std::string payload;
  EXPECT_TRUE(recv_fd(server.get(), &payload));
  EXPECT_EQ(payload, "/dev/pts/7");
}

TEST(UnixSocket, ConnectShortPathAndMissingSocket) {
  TempDir dir;
  std::string path = dir.file("s");
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  EXPECT_TRUE(connect_unix(path));

  try {
    connect_unix(dir.file("missing"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "connect to " + dir.file("missing") + ": no such file or directory");
  }
}
