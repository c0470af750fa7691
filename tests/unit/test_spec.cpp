#include <gtest/gtest.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/process.hpp"
#include "runtime/lib/spec.hpp"
#include "runtime/lib/spec_template.hpp"
#include "runtime/lib/state.hpp"

using namespace berth;

namespace {

class SpecTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-spec-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    bundle_ = tmpl;
    ::mkdir((bundle_ + "/rootfs").c_str(), 0755);
    base_ = json::parse(default_spec(false).dump());
    base_["process"]["terminal"] = false;
  }
  void TearDown() override {
    ::rmdir((bundle_ + "/rootfs").c_str());
    ::rmdir(bundle_.c_str());
  }
  std::string error_for(const json& doc) {
    try {
      parse_spec(doc.dump(), bundle_);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string bundle_;
  json base_;
};

} // namespace

TEST_F(SpecTest, DefaultSpecParses) {
  Spec s = parse_spec(base_.dump(), bundle_);
  EXPECT_EQ(s.root_path, bundle_ + "/rootfs");
  EXPECT_TRUE(s.root_readonly);
  EXPECT_EQ(s.process.args, std::vector<std::string>{"sh"});
  EXPECT_TRUE(s.has_namespace(CLONE_NEWPID));
  EXPECT_TRUE(s.has_namespace(CLONE_NEWNS));
  EXPECT_FALSE(s.has_namespace(CLONE_NEWUSER));
  EXPECT_EQ(s.mounts.size(), 7u);
  EXPECT_TRUE(s.process.no_new_privileges);
}

TEST_F(SpecTest, RootlessSpecParses) {
  json doc = json::parse(default_spec(true).dump());
  Spec s = parse_spec(doc.dump(), bundle_);
  EXPECT_TRUE(s.has_namespace(CLONE_NEWUSER));
  EXPECT_FALSE(s.has_namespace(CLONE_NEWNET));
  EXPECT_EQ(s.uid_mappings.size(), 1u);
  EXPECT_TRUE(namespaces_need_intermediate(s) == false);
}

TEST_F(SpecTest, ErrorsNameTheField) {
  json d = base_;
  d["process"]["args"] = json::array();
  EXPECT_EQ(error_for(d), "process.args: must not be empty");
  d = base_;
  d["process"]["args"] = "sh";
  EXPECT_EQ(error_for(d), "process.args: expected an array of strings, got string");
  d = base_;
  d["linux"]["namespaces"].push_back({{"type", "bogus"}});
  EXPECT_EQ(error_for(d), "linux.namespaces[6].type: unknown namespace type \"bogus\"");
  d = base_;
  d["linux"]["namespaces"].push_back({{"type", "pid"}});
  EXPECT_EQ(error_for(d), "linux.namespaces[6].type: namespace \"pid\" listed twice");
  d = base_;
  d["linux"]["namespaces"][0]["path"] = "proc/1/ns/pid";
  EXPECT_EQ(error_for(d), "linux.namespaces[0].path: \"proc/1/ns/pid\" must be an absolute path");
  d = base_;
  d["process"]["cwd"] = "relative";
  EXPECT_EQ(error_for(d), "process.cwd: \"relative\" must be an absolute path");
  d = base_;
  d["root"]["path"] = "nope";
  EXPECT_EQ(error_for(d), "root.path: rootfs " + bundle_ + "/nope: no such file or directory");
  d = base_;
  d.erase("process");
  EXPECT_EQ(error_for(d), "process: missing");
  d = base_;
  d["process"]["user"]["uid"] = "root";
  EXPECT_EQ(error_for(d), "process.user.uid: expected a non-negative integer, got string");
}

TEST_F(SpecTest, CrossFieldRules) {
  json d = base_;
  d["linux"]["namespaces"].push_back({{"type", "user"}});
  EXPECT_NE(error_for(d).find("needs both uidMappings and gidMappings"), std::string::npos);
  d = base_;
  d["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 1000}, {"size", 0}}};
  EXPECT_EQ(error_for(d), "linux.uidMappings[0].size: must be greater than 0");
  d = base_;
  d["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 1000}, {"size", 1}}};
  d["linux"]["gidMappings"] = d["linux"]["uidMappings"];
  EXPECT_NE(error_for(d).find("require a user namespace"), std::string::npos);
  d = base_;
  d["linux"]["namespaces"].erase(3); // uts
  EXPECT_EQ(error_for(d), "hostname: setting the hostname needs a private UTS namespace");
  d = base_;
  d["linux"]["sysctl"] = {{"kernel.pid_max", "100"}};
  EXPECT_NE(error_for(d).find("is not namespaced"), std::string::npos);
  d = base_;
  d["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
  EXPECT_EQ(error_for(d), "");
  d["linux"]["namespaces"].erase(1); // network
  EXPECT_NE(error_for(d).find("host's network namespace"), std::string::npos);
  d = base_;
  d["linux"]["timeOffsets"] = {{"monotonic", {{"secs", 10}}}};
  EXPECT_EQ(error_for(d), "linux.timeOffsets: time offsets need a new time namespace");
}

TEST_F(SpecTest, InvalidJson) {
  try {
    parse_spec("{\"ociVersion\": ", bundle_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos);
  }
}

TEST_F(SpecTest, IntermediateProcessRules) {
  json d = base_;
  EXPECT_FALSE(namespaces_need_intermediate(parse_spec(d.dump(), bundle_)));
  d["linux"]["namespaces"][0]["path"] = "/proc/1/ns/pid";
  EXPECT_TRUE(namespaces_need_intermediate(parse_spec(d.dump(), bundle_)));
  d = base_;
  d["linux"]["namespaces"][1]["path"] = "/proc/1/ns/net"; // joining net alone stays on the fast path
  EXPECT_FALSE(namespaces_need_intermediate(parse_spec(d.dump(), bundle_)));
}

TEST(ContainerId, Validation) {
  EXPECT_NO_THROW(validate_container_id("abc-1.2_x+y"));
  EXPECT_THROW(validate_container_id("../x"), Error);
  EXPECT_THROW(validate_container_id(".."), Error);
  EXPECT_THROW(validate_container_id(""), Error);
  EXPECT_THROW(validate_container_id("a/b"), Error);
}

TEST(ResolveExecutable, PathLookupAndErrors) {
  EXPECT_EQ(resolve_executable("sh", {"PATH=/usr/bin:/bin"}), "/usr/bin/sh");
  try {
    resolve_executable("no-such-binary-xyz", {"PATH=/bin"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "exec: \"no-such-binary-xyz\": executable file not found in $PATH");
  }
  try {
    resolve_executable("/no/such", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "exec: \"/no/such\": stat /no/such: no such file or directory");
  }
  char tmpl[] = "/tmp/berth-noexec-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::string noexec = tmpl;
  try {
    resolve_executable(noexec, {});
    ADD_FAILURE() << "non-executable file accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "exec: \"" + noexec + "\": permission denied");
  }
  ::unlink(noexec.c_str());
}

TEST(ProcStat, ReadsOwnStartTime) {
  auto st = read_proc_stat(::getpid());
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, 'R');
  EXPECT_GT(st->start_time, 0u);
}
