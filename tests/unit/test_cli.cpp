// runc 1.1 (urfave/cli v1.22.1) command-line compatibility.
#include "runtime/lib/cli.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace berth::cli {
namespace {

using Strings = std::vector<std::string>;

Command run_parse(std::initializer_list<const char*> words) {
  std::vector<std::string> storage{"berth"};
  storage.insert(storage.end(), words.begin(), words.end());
  std::vector<char*> argv;
  for (std::string& word : storage) argv.push_back(word.data());
  argv.push_back(nullptr);
  return parse(static_cast<int>(storage.size()), argv.data());
}

// The Error message, or "<no error>" so a mismatch shows up in the assertion.
std::string parse_error(std::initializer_list<const char*> words) {
  try {
    run_parse(words);
  } catch (const Error& e) {
    return e.message();
  }
  return "<no error>";
}

// ---- global flags ------------------------------------------------------------

TEST(CliGlobal, Defaults) {
  Command c = run_parse({"state", "ctr"});
  EXPECT_EQ(c.name, "state");
  EXPECT_EQ(c.args, Strings{"ctr"});
  EXPECT_EQ(c.global.root, "");
  EXPECT_EQ(c.global.log, "");
  EXPECT_EQ(c.global.log_format, "text");
  EXPECT_FALSE(c.global.debug);
  EXPECT_FALSE(c.global.systemd_cgroup);
  EXPECT_EQ(c.global.cgroup_manager, "");
  EXPECT_EQ(c.global.rootless, "auto");
  EXPECT_FALSE(c.show_help);
  EXPECT_FALSE(c.show_version);
  EXPECT_TRUE(c.flags.empty());
}

TEST(CliGlobal, SpaceForm) {
  Command c = run_parse({"--root", "/r", "--log", "/l.log", "--log-format", "json", "--debug", "--systemd-cgroup",
                         "--rootless", "true", "--cgroup-manager", "systemd", "--criu", "/bin/criu", "start", "ctr"});
  EXPECT_EQ(c.global.root, "/r");
  EXPECT_EQ(c.global.log, "/l.log");
  EXPECT_EQ(c.global.log_format, "json");
  EXPECT_TRUE(c.global.debug);
  EXPECT_TRUE(c.global.systemd_cgroup);
  EXPECT_EQ(c.global.rootless, "true");
  EXPECT_EQ(c.global.cgroup_manager, "systemd");
  EXPECT_EQ(c.name, "start");
  EXPECT_EQ(c.args, Strings{"ctr"});
  EXPECT_TRUE(c.flags.empty()) << "global flags must not leak into command flags";
}

TEST(CliGlobal, AllowUnenforcedLimits) {
  EXPECT_FALSE(run_parse({"list"}).global.allow_unenforced_limits);
  EXPECT_TRUE(run_parse({"--allow-unenforced-limits", "create", "c"}).global.allow_unenforced_limits);
  EXPECT_TRUE(run_parse({"-allow-unenforced-limits=true", "run", "c"}).global.allow_unenforced_limits);
  EXPECT_FALSE(run_parse({"--allow-unenforced-limits=false", "run", "c"}).global.allow_unenforced_limits);
  // A global flag: after the command it is the command's (unknown) flag, as in runc.
  EXPECT_EQ(parse_error({"create", "--allow-unenforced-limits", "c"}),
            "flag provided but not defined: -allow-unenforced-limits");
}

TEST(CliGlobal, EqualsForm) {
  Command c = run_parse({"--root=/r", "--log=/l", "--log-format=json", "--debug=true", "--systemd-cgroup=false",
                         "--rootless=false", "--cgroup-manager=disabled", "--criu=x", "list"});
  EXPECT_EQ(c.global.root, "/r");
  EXPECT_EQ(c.global.log, "/l");
  EXPECT_EQ(c.global.log_format, "json");
  EXPECT_TRUE(c.global.debug);
  EXPECT_FALSE(c.global.systemd_cgroup);
  EXPECT_EQ(c.global.rootless, "false");
  EXPECT_EQ(c.global.cgroup_manager, "disabled");
  EXPECT_EQ(c.name, "list");
}

TEST(CliGlobal, SingleDashForms) {
  Command c = run_parse({"-root", "/r", "-log=/l", "-debug", "-log-format", "json", "kill", "ctr"});
  EXPECT_EQ(c.global.root, "/r");
  EXPECT_EQ(c.global.log, "/l");
  EXPECT_TRUE(c.global.debug);
  EXPECT_EQ(c.global.log_format, "json");
  EXPECT_EQ(c.name, "kill");
}

TEST(CliGlobal, ValueMayLookLikeAFlag) {
  // Go's flag package takes the next word as the value, whatever it is.
  Command c = run_parse({"--root", "--debug", "list"});
  EXPECT_EQ(c.global.root, "--debug");
  EXPECT_FALSE(c.global.debug);
}

TEST(CliGlobal, RepeatedFlagKeepsLast) {
  Command c = run_parse({"--root", "/a", "--root=/b", "list"});
  EXPECT_EQ(c.global.root, "/b");
}

TEST(CliGlobal, RootlessNormalised) {
  EXPECT_EQ(run_parse({"--rootless", "AUTO", "list"}).global.rootless, "auto");
  EXPECT_EQ(run_parse({"--rootless=", "list"}).global.rootless, "auto");
  EXPECT_EQ(run_parse({"--rootless", "1", "list"}).global.rootless, "true");
  EXPECT_EQ(run_parse({"--rootless", "F", "list"}).global.rootless, "false");
  EXPECT_EQ(parse_error({"--rootless", "maybe", "list"}),
            "invalid value \"maybe\" for flag -rootless: want true, false or auto");
}

TEST(CliGlobal, LogFormatValidated) {
  EXPECT_EQ(parse_error({"--log-format", "xml", "list"}), "invalid log-format: xml");
  EXPECT_EQ(run_parse({"--log-format=", "list"}).global.log_format, "text");
  // runc validates in its Before hook, which --version and --help skip.
  EXPECT_TRUE(run_parse({"--log-format", "xml", "--version"}).show_version);
}

TEST(CliGlobal, CgroupManagerValidated) {
  EXPECT_EQ(run_parse({"--cgroup-manager", "cgroupfs", "list"}).global.cgroup_manager, "cgroupfs");
  EXPECT_EQ(parse_error({"--cgroup-manager", "bogus", "list"}),
            "invalid value \"bogus\" for flag -cgroup-manager: want cgroupfs, systemd or disabled");
}

TEST(CliGlobal, BoolDoesNotTakeSeparateValue) {
  // `--debug false`: "false" is the first positional, hence the command name.
  EXPECT_EQ(parse_error({"--debug", "false", "list"}), "No help topic for 'false'");
  EXPECT_EQ(parse_error({"--debug=maybe", "list"}), "invalid boolean value \"maybe\" for -debug: parse error");
}

TEST(CliGlobal, Version) {
  for (const char* flag : {"-v", "--version", "-version", "--v", "--version=true"}) {
    Command c = run_parse({flag});
    EXPECT_TRUE(c.show_version) << flag;
    EXPECT_FALSE(c.show_help) << flag;
    EXPECT_EQ(c.name, "") << flag;
  }
  EXPECT_TRUE(run_parse({"--root", "/r", "-v"}).show_version);
  EXPECT_FALSE(run_parse({"--version=false", "list"}).show_version);
}

TEST(CliGlobal, Help) {
  for (const char* flag : {"-h", "--help", "-help", "--h"}) {
    Command c = run_parse({flag});
    EXPECT_TRUE(c.show_help) << flag;
    EXPECT_EQ(c.name, "") << flag;
  }
  // Global --help before a command shows the global help, as urfave does.
  Command c = run_parse({"--help", "create"});
  EXPECT_TRUE(c.show_help);
  EXPECT_EQ(c.name, "");
  // No command at all also shows help (runc exits 0).
  EXPECT_TRUE(run_parse({}).show_help);
  EXPECT_TRUE(run_parse({"--root", "/r"}).show_help);
}

TEST(CliGlobal, HelpWinsOverVersion) {
  Command c = run_parse({"-v", "-h"});
  EXPECT_TRUE(c.show_help);
  EXPECT_TRUE(c.show_version);
}

TEST(CliGlobal, DoubleDashEndsGlobalFlags) {
  Command c = run_parse({"--debug", "--", "state", "ctr"});
  EXPECT_TRUE(c.global.debug);
  EXPECT_EQ(c.name, "state");
}

TEST(CliGlobal, CommandFlagBeforeCommandIsUnknown) {
  EXPECT_EQ(parse_error({"--bundle", "/b", "create", "ctr"}), "flag provided but not defined: -bundle");
}

TEST(CliGlobal, GlobalFlagAfterCommandIsUnknown) {
  EXPECT_EQ(parse_error({"create", "--root", "/r", "ctr"}), "flag provided but not defined: -root");
  EXPECT_EQ(parse_error({"list", "--debug"}), "flag provided but not defined: -debug");
}

// ---- errors ------------------------------------------------------------------

TEST(CliErrors, UnknownFlag) {
  EXPECT_EQ(parse_error({"--foo", "list"}), "flag provided but not defined: -foo");
  EXPECT_EQ(parse_error({"-foo=1", "list"}), "flag provided but not defined: -foo");
  EXPECT_EQ(parse_error({"create", "--foo", "ctr"}), "flag provided but not defined: -foo");
  EXPECT_EQ(parse_error({"delete", "-x", "ctr"}), "flag provided but not defined: -x");
  EXPECT_EQ(parse_error({"exec", "--bogus=1", "ctr", "ls"}), "flag provided but not defined: -bogus");
}

TEST(CliErrors, UnknownCommand) {
  EXPECT_EQ(parse_error({"frobnicate"}), "No help topic for 'frobnicate'");
  EXPECT_EQ(parse_error({"--root", "/r", "bogus", "x"}), "No help topic for 'bogus'");
  EXPECT_EQ(parse_error({"init"}), "No help topic for 'init'");
  EXPECT_EQ(parse_error({"-"}), "No help topic for '-'");
}

TEST(CliErrors, MissingValue) {
  EXPECT_EQ(parse_error({"--root"}), "flag needs an argument: -root");
  EXPECT_EQ(parse_error({"-log"}), "flag needs an argument: -log");
  EXPECT_EQ(parse_error({"create", "--bundle"}), "flag needs an argument: -bundle");
  EXPECT_EQ(parse_error({"create", "-b"}), "flag needs an argument: -b");
  EXPECT_EQ(parse_error({"exec", "--cwd"}), "flag needs an argument: -cwd");
}

TEST(CliErrors, BadFlagSyntax) {
  EXPECT_EQ(parse_error({"---root", "/r", "list"}), "bad flag syntax: ---root");
  EXPECT_EQ(parse_error({"delete", "-=x", "ctr"}), "bad flag syntax: -=x");
}

TEST(CliErrors, BadBoolean) {
  EXPECT_EQ(parse_error({"delete", "--force=yes", "ctr"}), "invalid boolean value \"yes\" for -force: parse error");
  EXPECT_EQ(parse_error({"delete", "-f=", "ctr"}), "invalid boolean value \"\" for -f: parse error");
}

TEST(CliErrors, BadNumbers) {
  EXPECT_EQ(parse_error({"create", "--preserve-fds", "two", "ctr"}),
            "invalid value \"two\" for flag -preserve-fds: parse error");
  EXPECT_EQ(parse_error({"create", "--preserve-fds=99999999999999999999", "ctr"}),
            "invalid value \"99999999999999999999\" for flag -preserve-fds: value out of range");
  EXPECT_EQ(parse_error({"exec", "-g", "wheel", "ctr", "ls"}),
            "invalid value \"wheel\" for flag -g: strconv.ParseInt: parsing \"wheel\": invalid syntax");
  EXPECT_EQ(parse_error({"events", "--interval", "5", "ctr"}), "invalid value \"5\" for flag -interval: parse error");
  EXPECT_EQ(parse_error({"events", "--interval=5x", "ctr"}), "invalid value \"5x\" for flag -interval: parse error");
  EXPECT_EQ(parse_error({"update", "--pids-limit", "lots", "ctr"}),
            "invalid value \"lots\" for flag -pids-limit: parse error");
}

// ---- create / run ----------------------------------------------------------------

TEST(CliCreate, AllFlagForms) {
  Command c = run_parse({"create", "--bundle", "/b", "--console-socket=/sock", "-pid-file", "/p", "--no-pivot",
                         "--no-new-keyring", "--preserve-fds=2", "--pidfd-socket", "/pidfd", "ctr"});
  EXPECT_EQ(c.name, "create");
  EXPECT_EQ(c.value("bundle"), "/b");
  EXPECT_EQ(c.value("console-socket"), "/sock");
  EXPECT_EQ(c.value("pid-file"), "/p");
  EXPECT_TRUE(c.boolean("no-pivot"));
  EXPECT_TRUE(c.boolean("no-new-keyring"));
  EXPECT_EQ(c.integer("preserve-fds", 0), 2);
  EXPECT_EQ(c.value("pidfd-socket"), "/pidfd");
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliCreate, ShortAliasStoredUnderLongName) {
  for (auto words : {std::initializer_list<const char*>{"create", "-b", "/b", "ctr"},
                     std::initializer_list<const char*>{"create", "-b=/b", "ctr"},
                     std::initializer_list<const char*>{"create", "--b", "/b", "ctr"},
                     std::initializer_list<const char*>{"create", "--bundle=/b", "ctr"},
                     std::initializer_list<const char*>{"create", "-bundle", "/b", "ctr"}}) {
    Command c = run_parse(words);
    EXPECT_EQ(c.value("bundle"), "/b");
    EXPECT_FALSE(c.has("b"));
    EXPECT_EQ(c.args, Strings{"ctr"});
  }
}

TEST(CliCreate, BoolForms) {
  EXPECT_TRUE(run_parse({"create", "--no-pivot", "ctr"}).boolean("no-pivot"));
  EXPECT_TRUE(run_parse({"create", "--no-pivot=true", "ctr"}).boolean("no-pivot"));
  EXPECT_TRUE(run_parse({"create", "-no-pivot=1", "ctr"}).boolean("no-pivot"));
  Command off = run_parse({"create", "--no-pivot=false", "ctr"});
  EXPECT_TRUE(off.has("no-pivot"));
  EXPECT_FALSE(off.boolean("no-pivot"));
  EXPECT_EQ(off.value("no-pivot"), "false");
  EXPECT_FALSE(run_parse({"create", "ctr"}).boolean("no-pivot"));
}

TEST(CliCreate, BoolDoesNotConsumeNextWord) {
  Command c = run_parse({"create", "--no-pivot", "true", "ctr"});
  EXPECT_TRUE(c.boolean("no-pivot"));
  EXPECT_EQ(c.args, (Strings{"true", "ctr"}));
}

TEST(CliCreate, FlagsAfterIdAreReordered) {
  // urfave v1.22.1 (runc 1.1) moves dash arguments in front of the operands.
  Command c = run_parse({"create", "ctr", "--bundle", "/b", "--pid-file=/p"});
  EXPECT_EQ(c.value("bundle"), "/b");
  EXPECT_EQ(c.value("pid-file"), "/p");
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliCreate, ConmonStyle) {
  Command c = run_parse({"--root", "/run/berth", "--systemd-cgroup", "--log-format=json", "--log", "/l", "create",
                         "--bundle", "/b", "--pid-file", "/p", "--no-new-keyring", "--console-socket", "/s", "ctr1"});
  EXPECT_EQ(c.global.root, "/run/berth");
  EXPECT_TRUE(c.global.systemd_cgroup);
  EXPECT_EQ(c.global.log_format, "json");
  EXPECT_EQ(c.name, "create");
  EXPECT_EQ(c.value("bundle"), "/b");
  EXPECT_EQ(c.value("console-socket"), "/s");
  EXPECT_EQ(c.args, Strings{"ctr1"});
}

TEST(CliCreate, TrailingValueFlagSwallowsId) {
  // runc 1.1 quirk kept on purpose: reordering puts `--bundle` before the id,
  // which then becomes its value.
  Command c = run_parse({"create", "ctr", "--bundle"});
  EXPECT_EQ(c.value("bundle"), "ctr");
  EXPECT_TRUE(c.args.empty());
}

TEST(CliCreate, ValueStartingWithDash) {
  Command c = run_parse({"create", "--pid-file", "-weird", "ctr"});
  EXPECT_EQ(c.value("pid-file"), "-weird");
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliCreate, IntegerSyntax) {
  EXPECT_EQ(run_parse({"create", "--preserve-fds", "0x10", "ctr"}).integer("preserve-fds", 0), 16);
  EXPECT_EQ(run_parse({"create", "--preserve-fds", "010", "ctr"}).integer("preserve-fds", 0), 8);
  EXPECT_EQ(run_parse({"create", "--preserve-fds", "-3", "ctr"}).integer("preserve-fds", 0), -3);
  EXPECT_EQ(run_parse({"create", "ctr"}).integer("preserve-fds", 7), 7);
}

TEST(CliCreate, DoubleDash) {
  Command c = run_parse({"create", "-b", "/b", "--", "ctr"});
  EXPECT_EQ(c.value("bundle"), "/b");
  EXPECT_EQ(c.args, Strings{"ctr"});
  // After `--` nothing is a flag (runc keeps the `--` when operands come first).
  Command d = run_parse({"create", "ctr", "--", "--bundle"});
  EXPECT_FALSE(d.has("bundle"));
  EXPECT_EQ(d.args, (Strings{"ctr", "--", "--bundle"}));
}

TEST(CliCreate, Help) {
  for (const char* flag : {"--help", "-h", "-help", "--h"}) {
    Command c = run_parse({"create", flag});
    EXPECT_TRUE(c.show_help) << flag;
    EXPECT_EQ(c.name, "create");
    EXPECT_FALSE(c.has("help"));
  }
  EXPECT_TRUE(run_parse({"create", "ctr", "--help"}).show_help);
}

TEST(CliRun, Flags) {
  Command c = run_parse({"run", "-d", "--keep", "-b", "/b", "--no-subreaper", "--pid-file=/p", "ctr"});
  EXPECT_EQ(c.name, "run");
  EXPECT_TRUE(c.boolean("detach"));
  EXPECT_TRUE(c.boolean("keep"));
  EXPECT_TRUE(c.boolean("no-subreaper"));
  EXPECT_EQ(c.value("bundle"), "/b");
  EXPECT_EQ(c.value("pid-file"), "/p");
  EXPECT_EQ(c.args, Strings{"ctr"});
  EXPECT_EQ(parse_error({"create", "--detach", "ctr"}), "flag provided but not defined: -detach");
}

// ---- simple commands ---------------------------------------------------------

TEST(CliCommands, StartStatePauseResume) {
  for (const char* name : {"start", "state", "pause", "resume"}) {
    Command c = run_parse({name, "ctr"});
    EXPECT_EQ(c.name, name);
    EXPECT_EQ(c.args, Strings{"ctr"});
    EXPECT_EQ(parse_error({name, "--force", "ctr"}), "flag provided but not defined: -force");
  }
}

TEST(CliCommands, ListAndAlias) {
  Command c = run_parse({"list", "--format", "json", "-q"});
  EXPECT_EQ(c.name, "list");
  EXPECT_EQ(c.value("format"), "json");
  EXPECT_TRUE(c.boolean("quiet"));
  Command ls = run_parse({"ls", "-f=table", "--quiet=false"});
  EXPECT_EQ(ls.name, "list");
  EXPECT_EQ(ls.value("format"), "table");
  EXPECT_FALSE(ls.boolean("quiet"));
  EXPECT_EQ(run_parse({"list"}).value("format", "table"), "table");
}

TEST(CliCommands, DeleteAndAlias) {
  Command c = run_parse({"delete", "--force", "ctr"});
  EXPECT_EQ(c.name, "delete");
  EXPECT_TRUE(c.boolean("force"));
  EXPECT_EQ(c.args, Strings{"ctr"});
  Command rm = run_parse({"rm", "ctr", "-f"});
  EXPECT_EQ(rm.name, "delete");
  EXPECT_TRUE(rm.boolean("force"));
  EXPECT_EQ(rm.args, Strings{"ctr"});
}

TEST(CliCommands, KillSignalPositional) {
  Command c = run_parse({"kill", "ctr", "KILL"});
  EXPECT_EQ(c.name, "kill");
  EXPECT_EQ(c.args, (Strings{"ctr", "KILL"}));
  EXPECT_FALSE(c.boolean("all"));

  Command all = run_parse({"kill", "--all", "ctr", "9"});
  EXPECT_TRUE(all.boolean("all"));
  EXPECT_EQ(all.args, (Strings{"ctr", "9"}));

  Command short_all = run_parse({"kill", "-a", "ctr", "SIGTERM"});
  EXPECT_TRUE(short_all.boolean("all"));
  EXPECT_EQ(short_all.args, (Strings{"ctr", "SIGTERM"}));

  Command trailing = run_parse({"kill", "ctr", "TERM", "-a"});
  EXPECT_TRUE(trailing.boolean("all"));
  EXPECT_EQ(trailing.args, (Strings{"ctr", "TERM"}));

  EXPECT_EQ(run_parse({"kill", "ctr"}).args, Strings{"ctr"});
  // A dash signal is a flag to runc too.
  EXPECT_EQ(parse_error({"kill", "ctr", "-9"}), "flag provided but not defined: -9");
}

TEST(CliCommands, PsPassesOptionsThrough) {
  Command c = run_parse({"ps", "--format", "json", "ctr", "-ef", "--forest"});
  EXPECT_EQ(c.name, "ps");
  EXPECT_EQ(c.value("format"), "json");
  EXPECT_EQ(c.args, (Strings{"ctr", "-ef", "--forest"}));
  Command f = run_parse({"ps", "-f", "table", "ctr", "-f"});
  EXPECT_EQ(f.value("format"), "table");
  EXPECT_EQ(f.args, (Strings{"ctr", "-f"}));
}

TEST(CliCommands, Events) {
  Command c = run_parse({"events", "--interval", "500ms", "--stats", "ctr"});
  EXPECT_EQ(c.name, "events");
  EXPECT_EQ(c.value("interval"), "500ms");
  EXPECT_EQ(c.duration("interval", std::chrono::seconds(5)), std::chrono::milliseconds(500));
  EXPECT_TRUE(c.boolean("stats"));
  EXPECT_EQ(c.args, Strings{"ctr"});

  EXPECT_EQ(run_parse({"events", "--interval=1m", "ctr"}).duration("interval", {}), std::chrono::minutes(1));
  EXPECT_EQ(run_parse({"events", "--interval=5s", "ctr"}).duration("interval", {}), std::chrono::seconds(5));
  EXPECT_EQ(run_parse({"events", "--interval=1h2m3.5s", "ctr"}).duration("interval", {}),
            std::chrono::hours(1) + std::chrono::minutes(2) + std::chrono::milliseconds(3500));
  EXPECT_EQ(run_parse({"events", "--interval=1.5us", "ctr"}).duration("interval", {}), std::chrono::nanoseconds(1500));
  EXPECT_EQ(run_parse({"events", "--interval=0", "ctr"}).duration("interval", {}), std::chrono::nanoseconds(0));
  EXPECT_EQ(run_parse({"events", "ctr"}).duration("interval", std::chrono::seconds(5)), std::chrono::seconds(5));
  for (const char* bad : {"--interval=", "--interval=s", "--interval=.s", "--interval=1..5s", "--interval=3d",
                          "--interval=9999999999h"})
    EXPECT_NE(parse_error({"events", bad, "ctr"}), "<no error>") << bad;
}

TEST(CliCommands, SpecAndFeatures) {
  Command c = run_parse({"spec", "--rootless", "-b", "/b"});
  EXPECT_EQ(c.name, "spec");
  EXPECT_TRUE(c.boolean("rootless"));
  EXPECT_EQ(c.value("bundle"), "/b");
  EXPECT_TRUE(c.args.empty());

  Command f = run_parse({"features"});
  EXPECT_EQ(f.name, "features");
  EXPECT_EQ(parse_error({"features", "--json"}), "flag provided but not defined: -json");
}

TEST(CliCommands, CheckpointRestoreAcceptRuncFlags) {
  Command c = run_parse({"checkpoint", "--image-path", "/img", "--work-path=/w", "--parent-path", "/p",
                         "--leave-running", "--tcp-established", "--ext-unix-sk", "--shell-job", "--lazy-pages",
                         "--file-locks", "--pre-dump", "--manage-cgroups-mode", "soft", "--empty-ns", "network",
                         "--auto-dedup", "--status-fd", "3", "--page-server", "1.2.3.4:5", "ctr"});
  EXPECT_EQ(c.name, "checkpoint");
  EXPECT_EQ(c.value("image-path"), "/img");
  EXPECT_EQ(c.integer("status-fd", -1), 3);
  EXPECT_EQ(c.values("empty-ns"), Strings{"network"});
  EXPECT_EQ(c.args, Strings{"ctr"});

  Command r = run_parse({"restore", "-b", "/b", "-d", "--pid-file", "/p", "--console-socket", "/s", "--no-pivot",
                         "--no-subreaper", "--image-path=/img", "--lsm-profile", "apparmor:x", "ctr"});
  EXPECT_EQ(r.name, "restore");
  EXPECT_EQ(r.value("bundle"), "/b");
  EXPECT_TRUE(r.boolean("detach"));
  EXPECT_TRUE(r.boolean("no-subreaper"));
  EXPECT_EQ(r.args, Strings{"ctr"});

  Command help = run_parse({"checkpoint", "--help"});
  EXPECT_TRUE(help.show_help);
  EXPECT_EQ(help.name, "checkpoint");
}

// ---- exec --------------------------------------------------------------------

TEST(CliExec, TrailingArgsVerbatim) {
  Command c = run_parse({"exec", "ctr", "ls", "-l", "--color=auto", "--", "-x", "--help"});
  EXPECT_EQ(c.name, "exec");
  EXPECT_EQ(c.args, (Strings{"ctr", "ls", "-l", "--color=auto", "--", "-x", "--help"}));
  EXPECT_TRUE(c.flags.empty());
  EXPECT_FALSE(c.show_help);
}

TEST(CliExec, DoubleDashAfterIdIsKept) {
  Command c = run_parse({"exec", "-t", "ctr", "--", "sh", "-c", "echo hi"});
  EXPECT_TRUE(c.boolean("tty"));
  EXPECT_EQ(c.args, (Strings{"ctr", "--", "sh", "-c", "echo hi"}));
}

TEST(CliExec, DoubleDashBeforeIdIsConsumed) {
  Command c = run_parse({"exec", "-t", "--", "ctr", "sh"});
  EXPECT_TRUE(c.boolean("tty"));
  EXPECT_EQ(c.args, (Strings{"ctr", "sh"}));
}

TEST(CliExec, AllFlags) {
  Command c = run_parse({"exec", "--console-socket", "/s", "--pidfd-socket=/pfd", "--cwd", "/tmp", "-e", "A=1",
                         "--env=B=2", "--env", "C=", "-t", "-u", "1000:1000", "-g", "10", "--additional-gids=0x14",
                         "-p", "/proc.json", "--detach", "--pid-file", "/pid", "--process-label", "system_u:x",
                         "--apparmor", "prof", "--no-new-privs", "-c", "CAP_SYS_ADMIN", "--cap=CAP_NET_RAW",
                         "--preserve-fds", "1", "--cgroup", "memory:sub", "--cgroup=sub2", "--ignore-paused", "ctr"});
  EXPECT_EQ(c.value("console-socket"), "/s");
  EXPECT_EQ(c.value("pidfd-socket"), "/pfd");
  EXPECT_EQ(c.value("cwd"), "/tmp");
  EXPECT_EQ(c.values("env"), (Strings{"A=1", "B=2", "C="}));
  EXPECT_TRUE(c.boolean("tty"));
  EXPECT_EQ(c.value("user"), "1000:1000");
  EXPECT_EQ(c.values("additional-gids"), (Strings{"10", "0x14"}));
  EXPECT_EQ(c.value("process"), "/proc.json");
  EXPECT_TRUE(c.boolean("detach"));
  EXPECT_EQ(c.value("pid-file"), "/pid");
  EXPECT_EQ(c.value("process-label"), "system_u:x");
  EXPECT_EQ(c.value("apparmor"), "prof");
  EXPECT_TRUE(c.boolean("no-new-privs"));
  EXPECT_EQ(c.values("cap"), (Strings{"CAP_SYS_ADMIN", "CAP_NET_RAW"}));
  EXPECT_EQ(c.integer("preserve-fds", 0), 1);
  EXPECT_EQ(c.values("cgroup"), (Strings{"memory:sub", "sub2"}));
  EXPECT_TRUE(c.boolean("ignore-paused"));
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliExec, RepeatableFlagsKeepOrderAcrossAliases) {
  Command c = run_parse({"exec", "-e", "A=1", "--env", "B=2", "-e=C=3", "ctr", "env"});
  EXPECT_EQ(c.values("env"), (Strings{"A=1", "B=2", "C=3"}));
  EXPECT_EQ(c.value("env"), "C=3");
  EXPECT_TRUE(c.values("cap").empty());
}

TEST(CliExec, FlagsAfterIdBelongToTheCommand) {
  Command c = run_parse({"exec", "ctr", "-t", "sh"});
  EXPECT_FALSE(c.has("tty"));
  EXPECT_EQ(c.args, (Strings{"ctr", "-t", "sh"}));
}

TEST(CliExec, ContainerdStyle) {
  Command c = run_parse({"--root", "/run/containerd/runc/k8s.io", "--log", "/x/log.json", "--log-format", "json",
                         "exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/x/pid", "ctr"});
  EXPECT_EQ(c.name, "exec");
  EXPECT_EQ(c.value("process"), "/tmp/p.json");
  EXPECT_TRUE(c.boolean("detach"));
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliExec, HelpBeforeId) {
  EXPECT_TRUE(run_parse({"exec", "--help"}).show_help);
  EXPECT_TRUE(run_parse({"exec", "-h", "ctr", "ls"}).show_help);
}

// ---- update ------------------------------------------------------------------

TEST(CliUpdate, PodmanResourcesEquals) {
  Command c = run_parse({"update", "--resources=/tmp/res.json", "ctr"});
  EXPECT_EQ(c.name, "update");
  EXPECT_EQ(c.value("resources"), "/tmp/res.json");
  EXPECT_EQ(c.args, Strings{"ctr"});
  EXPECT_EQ(run_parse({"update", "-r", "-", "ctr"}).value("resources"), "-");
  EXPECT_EQ(run_parse({"update", "-r=-", "ctr"}).value("resources"), "-");
}

TEST(CliUpdate, AllFlagsWithEquals) {
  Command c = run_parse({"update", "--blkio-weight=500", "--cpu-period=100000", "--cpu-quota=50000",
                         "--cpu-burst=1000", "--cpu-rt-period=1000000", "--cpu-rt-runtime=950000",
                         "--cpu-share=512", "--cpuset-cpus=0-3", "--cpuset-mems=0", "--kernel-memory=1g",
                         "--kernel-memory-tcp=1g", "--memory=1073741824", "--memory-reservation=512M",
                         "--memory-swap=-1", "--pids-limit=100", "--l3-cache-schema=L3:0=ff",
                         "--mem-bw-schema=MB:0=70", "--cpu-idle=1", "ctr"});
  EXPECT_EQ(c.integer("blkio-weight", 0), 500);
  EXPECT_EQ(c.value("cpu-period"), "100000");
  EXPECT_EQ(c.value("cpu-quota"), "50000");
  EXPECT_EQ(c.value("cpu-burst"), "1000");
  EXPECT_EQ(c.value("cpu-rt-period"), "1000000");
  EXPECT_EQ(c.value("cpu-rt-runtime"), "950000");
  EXPECT_EQ(c.value("cpu-share"), "512");
  EXPECT_EQ(c.value("cpuset-cpus"), "0-3");
  EXPECT_EQ(c.value("cpuset-mems"), "0");
  EXPECT_EQ(c.value("kernel-memory"), "1g");
  EXPECT_EQ(c.value("kernel-memory-tcp"), "1g");
  EXPECT_EQ(c.integer("memory", 0), 1073741824);
  EXPECT_EQ(c.value("memory-reservation"), "512M");
  EXPECT_EQ(c.integer("memory-swap", 0), -1);
  EXPECT_EQ(c.integer("pids-limit", 0), 100);
  EXPECT_EQ(c.value("l3-cache-schema"), "L3:0=ff");
  EXPECT_EQ(c.value("mem-bw-schema"), "MB:0=70");
  EXPECT_EQ(c.value("cpu-idle"), "1");
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliUpdate, NegativeValueWithSpace) {
  Command c = run_parse({"update", "--memory-swap", "-1", "ctr"});
  EXPECT_EQ(c.value("memory-swap"), "-1");
  EXPECT_EQ(c.args, Strings{"ctr"});
}

TEST(CliUpdate, IntegerAccessorNamesFlag) {
  Command c = run_parse({"update", "--memory=1g", "ctr"});
  try {
    c.integer("memory", 0);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "invalid value \"1g\" for flag -memory: parse error");
  }
}

// ---- help command, usage, names ---------------------------------------------------

TEST(CliHelp, HelpCommand) {
  Command all = run_parse({"help"});
  EXPECT_TRUE(all.show_help);
  EXPECT_EQ(all.name, "");
  Command one = run_parse({"help", "exec"});
  EXPECT_TRUE(one.show_help);
  EXPECT_EQ(one.name, "exec");
  EXPECT_TRUE(one.args.empty());
  EXPECT_EQ(run_parse({"h", "rm"}).name, "delete");
  EXPECT_EQ(parse_error({"help", "nope"}), "No help topic for 'nope'");
}

TEST(CliHelp, UsageListsCommandsAndGlobalFlags) {
  std::string text = usage("");
  for (const std::string& name : command_names()) EXPECT_NE(text.find("   " + name), std::string::npos) << name;
  for (const char* flag : {"--root value", "--log value", "--log-format value", "--debug", "--systemd-cgroup",
                           "--rootless value", "--cgroup-manager value", "--allow-unenforced-limits",
                           "--criu value", "--help, -h",
                           "--version, -v"})
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  EXPECT_NE(text.find("delete, rm"), std::string::npos);
  EXPECT_NE(text.find("list, ls"), std::string::npos);
}

TEST(CliHelp, UsageForEveryCommand) {
  for (const std::string& name : command_names()) {
    std::string text = usage(name);
    EXPECT_NE(text.find("berth " + name + " - "), std::string::npos) << name;
  }
  std::string create = usage("create");
  EXPECT_NE(create.find("--bundle value, -b value"), std::string::npos);
  EXPECT_NE(create.find("--no-pivot "), std::string::npos);
  EXPECT_NE(create.find("--preserve-fds value"), std::string::npos);
  EXPECT_NE(usage("checkpoint").find("--image-path value"), std::string::npos);
  EXPECT_NE(usage("exec").find("--env value, -e value"), std::string::npos);
  EXPECT_NE(usage("rm").find("--force, -f"), std::string::npos);
  EXPECT_EQ(usage("update").find("--kernel-memory"), std::string::npos) << "obsolete flags stay hidden";
  EXPECT_NE(usage("update").find("--resources value, -r value"), std::string::npos);
  EXPECT_THROW(usage("nope"), Error);
}

TEST(CliHelp, CommandNamesInHelpOrder) {
  EXPECT_EQ(command_names(), (Strings{"checkpoint", "create", "delete", "events", "exec", "kill", "list", "pause", "ps",
                                      "restore", "resume", "run", "spec", "start", "state", "update", "features"}));
}

// ---- argument counts -----------------------------------------------------------

std::string check_error(std::initializer_list<const char*> words) {
  try {
    check_args(run_parse(words));
  } catch (const Error& e) {
    return e.message();
  }
  return "<no error>";
}

TEST(CliArgs, Counts) {
  EXPECT_EQ(check_error({"start", "ctr"}), "<no error>");
  EXPECT_EQ(check_error({"start"}), "berth: \"start\" requires exactly 1 argument(s)");
  EXPECT_EQ(check_error({"delete", "a", "b"}), "berth: \"delete\" requires exactly 1 argument(s)");
  EXPECT_EQ(check_error({"list", "x"}), "berth: \"list\" requires exactly 0 argument(s)");
  EXPECT_EQ(check_error({"kill"}), "berth: \"kill\" requires a minimum of 1 argument(s)");
  EXPECT_EQ(check_error({"kill", "ctr", "TERM"}), "<no error>");
  EXPECT_EQ(check_error({"kill", "ctr", "TERM", "x"}), "berth: \"kill\" requires a maximum of 2 argument(s)");
  EXPECT_EQ(check_error({"exec"}), "berth: \"exec\" requires a minimum of 1 argument(s)");
  EXPECT_EQ(check_error({"exec", "ctr", "a", "b", "c"}), "<no error>");
  EXPECT_EQ(check_error({"ps", "ctr", "-ef"}), "<no error>");
}

} // namespace
} // namespace berth::cli
