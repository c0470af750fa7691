// Users and groups resolved inside a container's root, as runc's libcontainer/user does,
// and never through a symlink that leads out of the root.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/pod/user_lookup.hpp"
#include "tests/support/temp_dir.hpp"

namespace berth::cri {
namespace {

using test_support::TempDir;

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "default-user:x:1000:1000::/home/default-user:/bin/sh\n"
    "# a comment\n"
    "broken line\n";
constexpr const char* kGroup =
    "root:x:0:\n"
    "www-data:x:33:\n"
    "group-defined-in-image:x:50000:default-user,www-data\n"
    "staff:x:50:default-user\n";

TEST(UserLookup, NamesNumbersAndGroups) {
  auto r = lookup_user(kPasswd, kGroup, "default-user");
  EXPECT_EQ(r.uid, 1000u);
  EXPECT_EQ(r.gid, 1000u);
  EXPECT_EQ(r.home, "/home/default-user");
  EXPECT_EQ(r.additional_gids, (std::vector<uint32_t>{50000, 50}));
  // A numeric uid finds its entry (gid and groups from it).
  r = lookup_user(kPasswd, kGroup, "1000");
  EXPECT_EQ(r.gid, 1000u);
  EXPECT_EQ(r.additional_gids.size(), 2u);
  // A numeric uid without an entry is fine: gid 0, no groups.
  r = lookup_user(kPasswd, kGroup, "4242");
  EXPECT_EQ(r.uid, 4242u);
  EXPECT_EQ(r.gid, 0u);
  EXPECT_TRUE(r.additional_gids.empty());
  r = lookup_user(kPasswd, kGroup, "www-data:1004");
  EXPECT_EQ(r.uid, 33u);
  EXPECT_EQ(r.gid, 1004u);
  r = lookup_user(kPasswd, kGroup, "1003:staff");
  EXPECT_EQ(r.uid, 1003u);
  EXPECT_EQ(r.gid, 50u);
}

TEST(UserLookup, UnknownNamesAreErrorsNamingThem) {
  try {
    lookup_user(kPasswd, kGroup, "nobody-here");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EINVAL);
    EXPECT_NE(std::string(e.what()).find("nobody-here"), std::string::npos);
  }
  EXPECT_THROW(lookup_user(kPasswd, kGroup, "root:no-group"), Error);
}

TEST(UserLookup, ReadsInsideTheRootOnly) {
  TempDir root, outside;
  mkdir_p(root.path() + "/etc");
  write_file(outside.path() + "/passwd", "evil:x:0:0::/:/bin/sh\n");
  // An image whose /etc/passwd points at a host file: resolved inside the root, it is
  // the root's own (missing) file.
  ASSERT_EQ(::symlink((outside.path() + "/passwd").c_str(), (root.path() + "/etc/passwd").c_str()), 0);
  auto resolve = rootfs_user_resolver(root.path());
  EXPECT_THROW(resolve("evil"), Error);
  EXPECT_EQ(resolve("7").uid, 7u);
  ::unlink((root.path() + "/etc/passwd").c_str());
  write_file(root.path() + "/etc/passwd", kPasswd);
  write_file(root.path() + "/etc/group", kGroup);
  EXPECT_EQ(resolve("www-data").uid, 33u);
}

} // namespace
} // namespace berth::cri
