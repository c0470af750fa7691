// Unit tests of the image library that need no registry: references, digests,
// decompression, layer application (whiteouts, hostile tars), content store, metadata
// and the overlay snapshotter's bookkeeping.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <fcntl.h>
#include <sqlite3.h>

#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "common/curl_lazy.hpp"
#include "cri/image/pull_libraries.hpp"
#include "cri/image/untrusted.hpp"

#include "common/error.hpp"
#include "cri/image/content_store.hpp"
#include "cri/image/decompress.hpp"
#include "cri/image/image_store.hpp"
#include "cri/image/manifest.hpp"
#include "cri/image/metadata.hpp"
#include "cri/image/overlay_snapshotter.hpp"
#include "cri/image/reference.hpp"
#include "cri/image/registry_client.hpp"
#include "cri/image/unpack.hpp"
#include "test_helpers.hpp"

namespace berth::image {
namespace {

using testing::exists_nofollow;
using testing::make_tar;
using testing::TarEntry;
using testing::TempDir;

TEST(Reference, NormalisesLikeTheKubelet) {
  EXPECT_EQ(normalize_reference("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(normalize_reference("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(normalize_reference("library/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(normalize_reference("docker.io/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(normalize_reference("index.docker.io/library/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(normalize_reference("foo/bar"), "docker.io/foo/bar:latest");
  EXPECT_EQ(normalize_reference("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
  EXPECT_EQ(normalize_reference("localhost/foo"), "localhost/foo:latest");
  EXPECT_EQ(normalize_reference("127.0.0.1:5000/a/b/c:v1"), "127.0.0.1:5000/a/b/c:v1");
  EXPECT_EQ(normalize_reference("quay.io/a_b/c-d.e__f:tag-1.2_x"), "quay.io/a_b/c-d.e__f:tag-1.2_x");
  std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(normalize_reference("busybox@" + d), "docker.io/library/busybox@" + d);
  // Tag and digest: the digest wins and the tag is dropped, as in containerd's CRI.
  EXPECT_EQ(normalize_reference("busybox:1.36@" + d), "docker.io/library/busybox@" + d);
  Reference r = parse_reference("127.0.0.1:5000/x/y:z");
  EXPECT_EQ(r.domain, "127.0.0.1:5000");
  EXPECT_EQ(r.path, "x/y");
  EXPECT_EQ(r.tag, "z");
  EXPECT_EQ(r.object(), "z");
}

TEST(Reference, RejectsInvalidWithTheReferenceInTheMessage) {
  for (std::string bad : std::vector<std::string>{"", "Busybox", "busybox:", "busybox@sha256:abc", "a//b", "-a", "a:b:c",
                          std::string(64, 'a'), "busybox@md5:" + std::string(32, 'a'), "foo/bar:ta g"}) {
    try {
      parse_reference(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"" + bad + "\""), std::string::npos) << e.what();
      EXPECT_EQ(e.code(), EINVAL);
    }
  }
}

TEST(Registry, EndpointsMirrorsFirstThenTheHost) {
  std::vector<RegistryHost> hosts = {
      {.host = "docker.io", .mirrors = {"http://127.0.0.1:5000/", "mirror.example/v2"}, .ca_file = "/ca.pem"},
      {.host = "plain.example:5000", .plain_http = true, .skip_verify = true}};
  auto d = resolve_endpoints(hosts, "docker.io");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].base_url, "http://127.0.0.1:5000");
  EXPECT_TRUE(d[0].mirror);
  EXPECT_EQ(d[1].base_url, "https://mirror.example");
  EXPECT_EQ(d[2].base_url, "https://registry-1.docker.io");
  EXPECT_EQ(d[2].ca_files, std::vector<std::string>{"/ca.pem"});
  auto p = resolve_endpoints(hosts, "plain.example:5000");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].base_url, "http://plain.example:5000");
  EXPECT_TRUE(p[0].skip_verify);
  EXPECT_EQ(resolve_endpoints({}, "localhost:5000")[0].base_url, "http://localhost:5000");
  EXPECT_EQ(resolve_endpoints({}, "quay.io")[0].base_url, "https://quay.io");
}

TEST(Registry, CredentialsFromAuthConfigOrHost) {
  std::vector<RegistryHost> hosts = {{.host = "quay.io", .username = "static", .password = "pw"}};
  auto c = resolve_credentials(hosts, "quay.io", {});
  EXPECT_EQ(c.username, "static");
  c = resolve_credentials(hosts, "quay.io", {.auth = "dTpw"});  // base64("u:p")
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, "p");
  c = resolve_credentials(hosts, "quay.io", {.username = "a", .password = "b", .server_address = "https://quay.io"});
  EXPECT_EQ(c.username, "a");
  // Credentials for another registry are not sent here.
  c = resolve_credentials(hosts, "quay.io", {.username = "a", .password = "b", .server_address = "ghcr.io"});
  EXPECT_EQ(c.username, "static");
  c = resolve_credentials({}, "docker.io", {.username = "h", .server_address = "https://index.docker.io/v1/"});
  EXPECT_EQ(c.username, "h");
  c = resolve_credentials({}, "docker.io", {.registry_token = "tok"});
  EXPECT_EQ(c.registry_token, "tok");
  EXPECT_THROW(resolve_credentials({}, "docker.io", {.auth = "bm9jb2xvbg=="}), Error);  // "nocolon"
}

TEST(Manifest, ChainIdsFollowTheImageSpec) {
  std::string a = "sha256:" + std::string(64, 'a'), b = "sha256:" + std::string(64, 'b');
  auto c = chain_ids({a, b});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], a);
  EXPECT_EQ(c[1], sha256_digest(a + " " + b));
}

TEST(Manifest, PlatformSelection) {
  std::vector<Descriptor> idx = {
      {"", "sha256:" + std::string(64, '1'), 1, "linux", "arm64", "v8"},
      {"", "sha256:" + std::string(64, '2'), 1, "linux", "amd64", ""},
      {"", "sha256:" + std::string(64, '3'), 1, "linux", "arm", "v7"},
      {"", "sha256:" + std::string(64, '4'), 1, "windows", "amd64", ""},
  };
  EXPECT_EQ(select_platform(idx, "linux", "amd64", "")->digest, idx[1].digest);
  EXPECT_EQ(select_platform(idx, "linux", "arm64", "")->digest, idx[0].digest);
  EXPECT_EQ(select_platform(idx, "linux", "arm64", "v8")->digest, idx[0].digest);
  EXPECT_EQ(select_platform(idx, "linux", "arm", "v7")->digest, idx[2].digest);
  EXPECT_EQ(select_platform(idx, "linux", "arm", "v6"), nullptr);
  EXPECT_EQ(select_platform(idx, "linux", "s390x", ""), nullptr);
}

TEST(Manifest, RejectsUnsupportedLayersAndSchema1) {
  EXPECT_THROW(parse_manifest(R"({"schemaVersion":1})"), Error);
  std::string d = "sha256:" + std::string(64, 'c');
  std::string m = R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + d +
                  R"(","size":2},"layers":[{"mediaType":"application/x-foo","digest":")" + d + R"(","size":1}]})";
  EXPECT_THROW(parse_manifest(m), Error);
}

// The decompressor recognises each compression by its magic and yields the diff ID.
TEST(Decompress, GzipZstdAndNoneGiveTheSameDiffId) {
  std::string raw = make_tar({{.name = "a", .data = std::string(100000, 'x')}});
  std::string diff = sha256_digest(raw);
  for (std::string filter : {"", "gzip", "zstd"}) {
    std::string blob = make_tar({{.name = "a", .data = std::string(100000, 'x')}}, filter);
    size_t pos = 0;
    Decompressor d([&](char* buf, size_t len) {
      size_t n = std::min<size_t>({len, blob.size() - pos, 777});  // small reads: streaming edge cases
      std::memcpy(buf, blob.data() + pos, n);
      pos += n;
      return n;
    });
    EXPECT_EQ(d.finish(), diff) << "filter " << filter;
  }
}

TEST(Decompress, TruncatedGzipFails) {
  std::string blob = make_tar({{.name = "a", .data = std::string(100000, 'y')}}, "gzip");
  blob.resize(blob.size() / 2);
  size_t pos = 0;
  Decompressor d([&](char* buf, size_t len) {
    size_t n = std::min(len, blob.size() - pos);
    std::memcpy(buf, blob.data() + pos, n);
    pos += n;
    return n;
  });
  EXPECT_THROW(d.finish(), Error);
}

// The gzip CRC is not checked (the blob digest and the diff ID are), so what protects a
// layer is the diff ID (and the blob digest): a damaged trailer (CRC-32, length) changes
// nothing, damaged data changes the diff ID or breaks the stream.
TEST(Decompress, GzipIntegrityComesFromTheDiffId) {
  std::string raw = make_tar({{.name = "a", .data = std::string(100000, 'z')}});
  std::string blob = make_tar({{.name = "a", .data = std::string(100000, 'z')}}, "gzip");
  auto run = [](const std::string& b) {
    size_t pos = 0;
    Decompressor d([&](char* buf, size_t len) {
      size_t n = std::min(len, b.size() - pos);
      std::memcpy(buf, b.data() + pos, n);
      pos += n;
      return n;
    });
    return d.finish();
  };
  std::string bad_crc = blob;
  bad_crc[bad_crc.size() - 8] ^= 0x01;  // trailer: CRC-32, then ISIZE
  EXPECT_EQ(run(bad_crc), sha256_digest(raw));
  std::string bad_size = blob;
  bad_size[bad_size.size() - 4] ^= 0x01;
  EXPECT_EQ(run(bad_size), sha256_digest(raw));
  std::string bad_data = blob;
  bad_data[bad_data.size() / 2] ^= 0x01;
  try {
    EXPECT_NE(run(bad_data), sha256_digest(raw));
  } catch (const Error&) {
    // a broken deflate stream: rejected as well
  }
}

// Applies an in-memory tar to a fresh directory.
void apply_tar(const std::string& dir, const std::string& tar, const std::vector<std::string>& parents = {}) {
  size_t pos = 0;
  Decompressor d([&](char* buf, size_t len) {
    size_t n = std::min(len, tar.size() - pos);
    std::memcpy(buf, tar.data() + pos, n);
    pos += n;
    return n;
  });
  apply_layer(dir, d, parents);
}

TEST(Unpack, CleanEntryPath) {
  EXPECT_EQ(clean_entry_path("./a/b/"), "a/b");
  EXPECT_EQ(clean_entry_path("/abs/x"), "abs/x");
  EXPECT_EQ(clean_entry_path("a/../b"), "b");
  EXPECT_EQ(clean_entry_path("a//./c"), "a/c");
  EXPECT_EQ(clean_entry_path("./"), "");
  EXPECT_THROW(clean_entry_path("../x"), Error);
  EXPECT_THROW(clean_entry_path("a/../../x"), Error);
}

TEST(Unpack, RegularTreeWithModesOwnersAndLinks) {
  TempDir t;
  mkdir_p(t / "fs");
  apply_tar(t / "fs", make_tar({
                      {.name = "bin", .type = AE_IFDIR, .perm = 0755},
                      {.name = "bin/tool", .data = "#!/bin/sh\n", .perm = 04755},
                      {.name = "bin/alias", .type = AE_IFLNK, .link = "tool"},
                      {.name = "bin/hard", .hardlink = "bin/tool"},
                      {.name = "etc/deep/file", .data = "x"},  // parents missing from the tar
                      {.name = "caps", .data = "c", .xattrs = {{"user.berth", "yes"}}},
                  }));
  struct stat st;
  ASSERT_EQ(::stat((t / "fs/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);  // setuid kept, as containerd does
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_mtime, 1700000000);
  EXPECT_EQ(read_file(t / "fs/bin/hard"), "#!/bin/sh\n");
  char target[64] = {};
  ASSERT_GT(::readlink((t / "fs/bin/alias").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "tool");
  EXPECT_EQ(read_file(t / "fs/etc/deep/file"), "x");
  char xv[8] = {};
  EXPECT_EQ(::getxattr((t / "fs/caps").c_str(), "user.berth", xv, sizeof xv), 3);
  ASSERT_EQ(::stat((t / "fs/bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1700000000);  // directory times set after their content
}

// Non-ASCII names (pax UTF-8 headers) unpack byte for byte under the C locale too.
TEST(Unpack, Utf8Names) {
  TempDir t;
  mkdir_p(t / "fs");
  std::string name = "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac";
  apply_tar(t / "fs", make_tar({{.name = name, .data = "u"}, {.name = "l", .type = AE_IFLNK, .link = name}}));
  EXPECT_EQ(read_file(t / ("fs/" + name)), "u");
  char target[64] = {};
  ASSERT_GT(::readlink((t / "fs/l").c_str(), target, sizeof target), 0);
  EXPECT_EQ(std::string(target), name);
}

TEST(Unpack, WhiteoutsBecomeOverlayWhiteouts) {
  TempDir t;
  mkdir_p(t / "fs");
  apply_tar(t / "fs", make_tar({
                      {.name = "data", .type = AE_IFDIR, .perm = 0755},
                      {.name = "data/.wh.gone", .data = ""},
                      {.name = ".wh.topgone", .data = ""},
                      {.name = "opq", .type = AE_IFDIR, .perm = 0755},
                      {.name = "opq/.wh..wh..opq", .data = ""},
                      {.name = "opq/new", .data = "n"},
                      {.name = "implicit/.wh..wh..opq", .data = ""},
                      {.name = ".wh..wh.plnk", .type = AE_IFDIR, .perm = 0700},
                  }));
  struct stat st;
  for (auto p : {"data/gone", "topgone"}) {
    ASSERT_EQ(::lstat((t / "fs/" + std::string(p)).c_str(), &st), 0) << p;
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << p;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << p;
  }
  EXPECT_FALSE(exists_nofollow(t / "fs/data/.wh.gone"));
  char v[4] = {};
  EXPECT_EQ(::getxattr((t / "fs/opq").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(::getxattr((t / "fs/implicit").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_FALSE(exists_nofollow(t / "fs/opq/.wh..wh..opq"));
  EXPECT_FALSE(exists_nofollow(t / "fs/.wh..wh.plnk"));
  EXPECT_EQ(read_file(t / "fs/opq/new"), "n");
}

// Every hostile layer either fails or stays inside its snapshot: the sentinel directory
// next to the snapshot ("outside") and the host's /tmp stay untouched.
struct Hostile {
  const char* name;
  std::vector<TarEntry> entries;
  bool rejected;
};

class HostileLayer : public ::testing::TestWithParam<int> {};

std::vector<Hostile> hostile_cases() {
  return {
      {"traversal", {{.name = "../outside/escape", .data = "bad"}}, true},
      {"deep-traversal", {{.name = "a/../../../outside/escape", .data = "bad"}}, true},
      {"absolute", {{.name = "/outside/escape", .data = "contained"}}, false},
      {"symlink-relative-escape",
       {{.name = "evil", .type = AE_IFLNK, .link = "../../../../../../outside"},
        {.name = "evil/escape", .data = "bad"}},
       true},
      {"symlink-absolute-dir",
       {{.name = "out", .type = AE_IFDIR, .perm = 0755},
        {.name = "evil", .type = AE_IFLNK, .link = "/out"},
        {.name = "evil/escape", .data = "contained"}},
       false},
      {"symlink-file-overwrite",
       {{.name = "evil", .type = AE_IFLNK, .link = "/etc/hostname-berth-test"}, {.name = "evil", .data = "replaced"}},
       false},
      {"hardlink-traversal", {{.name = "link", .hardlink = "../outside/target"}}, true},
      {"hardlink-absolute-missing", {{.name = "link", .hardlink = "/outside/target"}}, true},
      {"hardlink-through-symlink",
       {{.name = "evil", .type = AE_IFLNK, .link = "../../outside"}, {.name = "link", .hardlink = "evil/target"}},
       true},
      {"hardlink-to-symlink",
       {{.name = "sl", .type = AE_IFLNK, .link = "../../outside/target"}, {.name = "link", .hardlink = "sl"},
        {.name = "link", .data = "rewritten"}},
       false},
      {"devices",
       {{.name = "dev", .type = AE_IFDIR, .perm = 0755},
        {.name = "dev/null2", .type = AE_IFCHR, .perm = 0666, .dev_major = 1, .dev_minor = 3},
        {.name = "dev/loop", .type = AE_IFBLK, .perm = 0660, .dev_major = 7, .dev_minor = 0},
        {.name = "dev/fifo", .type = AE_IFIFO, .perm = 0600}},
       false},
      {"overlay-xattr-forgery", {{.name = "d", .type = AE_IFDIR, .perm = 0755,
                                  .xattrs = {{"trusted.overlay.redirect", "/outside"}}}},
       false},
  };
}

TEST_P(HostileLayer, NothingIsWrittenOutsideTheSnapshot) {
  Hostile h = hostile_cases()[GetParam()];
  TempDir t;
  mkdir_p(t / "snap/fs");
  mkdir_p(t / "outside");
  write_file(t / "outside/target", "original");
  std::string tar = make_tar(h.entries);
  bool threw = false;
  try {
    apply_tar(t / "snap/fs", tar);
  } catch (const Error& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find("layer entry"), std::string::npos) << e.what();
  }
  EXPECT_EQ(threw, h.rejected) << h.name;
  EXPECT_EQ(read_file(t / "outside/target"), "original") << h.name;
  EXPECT_FALSE(exists_nofollow(t / "outside/escape")) << h.name;
  EXPECT_FALSE(exists_nofollow(t / "escape")) << h.name;
  EXPECT_FALSE(exists_nofollow("/etc/hostname-berth-test")) << h.name;
  std::string name = h.name;
  if (name == "absolute") {
    EXPECT_EQ(read_file(t / "snap/fs/outside/escape"), "contained");
  }
  if (name == "symlink-absolute-dir") {
    EXPECT_EQ(read_file(t / "snap/fs/out/escape"), "contained");
  }
  if (name == "symlink-file-overwrite") {
    EXPECT_EQ(read_file(t / "snap/fs/evil"), "replaced");
  }
  if (name == "devices") {
    struct stat st;
    ASSERT_EQ(::lstat((t / "snap/fs/dev/null2").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(1, 3));
    ASSERT_EQ(::lstat((t / "snap/fs/dev/loop").c_str(), &st), 0);
    EXPECT_TRUE(S_ISBLK(st.st_mode));
    ASSERT_EQ(::lstat((t / "snap/fs/dev/fifo").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
  }
  if (name == "overlay-xattr-forgery") {
    char v[64];
    EXPECT_LT(::getxattr((t / "snap/fs/d").c_str(), "trusted.overlay.redirect", v, sizeof v), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, HostileLayer, ::testing::Range(0, static_cast<int>(hostile_cases().size())),
                         [](const ::testing::TestParamInfo<int>& i) {
                           std::string n = hostile_cases()[i.param].name;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(Unpack, HardlinkToALowerLayerIsCopiedUp) {
  TempDir t;
  mkdir_p(t / "lower/etc");
  write_file(t / "lower/etc/passwd", "root:x:0:0::/:/bin/sh\n");
  mkdir_p(t / "upper");
  apply_tar(t / "upper", make_tar({{.name = "etc/passwd-link", .hardlink = "/etc/passwd"}}), {t / "lower"});
  EXPECT_EQ(read_file(t / "upper/etc/passwd-link"), "root:x:0:0::/:/bin/sh\n");
  EXPECT_EQ(read_file(t / "upper/etc/passwd"), "root:x:0:0::/:/bin/sh\n");
  EXPECT_EQ(read_file(t / "lower/etc/passwd"), "root:x:0:0::/:/bin/sh\n");
}

// Tars from ko, jib and friends often omit parent directories: a created parent takes the
// lower layer's owner and mode, or overlay would show the upper's defaults instead.
TEST(Unpack, MissingParentsCopyLowerLayerMetadata) {
  TempDir t;
  mkdir_p(t / "lower/var/spool");
  ASSERT_EQ(::chmod((t / "lower/var/spool").c_str(), 01730), 0);
  ASSERT_EQ(::chown((t / "lower/var/spool").c_str(), 0, 12), 0);
  mkdir_p(t / "upper");
  apply_tar(t / "upper", make_tar({{.name = "var/spool/job", .data = "j"}, {.name = "new/dir/f", .data = "f"}}),
            {t / "lower"});
  struct stat st;
  ASSERT_EQ(::stat((t / "upper/var/spool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01730u);
  EXPECT_EQ(st.st_gid, 12u);
  ASSERT_EQ(::stat((t / "upper/new/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

size_t count_entries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

TEST(ContentStore, CommitVerifiesAndIsAtomic) {
  TempDir t;
  ContentStore cs(t.path());
  std::string data = "hello blob";
  std::string d = sha256_digest(data);
  {
    auto in = cs.begin(d, data.size());
    ASSERT_TRUE(in);
    in->write(data.data(), 5);
    EXPECT_FALSE(cs.has(d));  // nothing visible before commit
    EXPECT_THROW(in->commit(), Error);  // short
  }
  EXPECT_FALSE(cs.has(d));
  EXPECT_EQ(count_entries(t / "content/ingest"), 0u) << "nothing is left of an ingest that was not committed";
  {
    auto in = cs.begin(d, data.size());
    std::string wrong = "hello blub";
    in->write(wrong.data(), wrong.size());
    EXPECT_THROW(in->commit(), Error);  // digest mismatch
  }
  EXPECT_FALSE(cs.has(d));
  cs.put(d, data);
  EXPECT_TRUE(cs.has(d));
  EXPECT_EQ(*cs.read(d), data);
  EXPECT_EQ(count_entries(t / "content/ingest"), 0u);
  EXPECT_FALSE(cs.begin(d, data.size()).has_value());  // present: nothing to write
  EXPECT_THROW(cs.put(sha256_digest("x"), "y"), Error);  // content must match its digest
  EXPECT_FALSE(cs.has(sha256_digest("x")));
  EXPECT_THROW(cs.blob_path("sha256:../../etc"), Error);
}

TEST(ContentStore, OpenRemovesAbandonedIngestFiles) {
  TempDir t;
  { ContentStore cs(t.path()); }
  std::string hex(64, 'e');
  write_file(t / ("content/ingest/" + hex + ".0123.tmp"), "partial");
  ContentStore cs(t.path());
  EXPECT_FALSE(exists_nofollow(t / ("content/ingest/" + hex + ".0123.tmp")));
}

// Blobs are not fsynced one by one (the pull's syncfs covers them before the record), so
// a power loss may leave an unrecorded blob whose name is on disk but not its data: the
// store re-hashes unrecorded blobs at open and drops the ones that do not match.
TEST(ImageStoreOpen, DropsTornUnrecordedBlobsAndKeepsWholeOnes) {
  TempDir t;
  std::string whole = "whole blob", torn = "torn blob";
  std::string whole_d = sha256_digest(whole), torn_d = sha256_digest(torn);
  StoreOptions o;
  o.root = t.path();
  { auto store = ImageStore::open(o); }
  {
    ContentStore cs(t.path());
    cs.put(whole_d, whole);
    write_file(cs.blob_path(torn_d), std::string(torn.size(), '\0'));  // name durable, data lost
  }
  { auto store = ImageStore::open(o); }
  ContentStore cs(t.path());
  EXPECT_TRUE(cs.has(whole_d)) << "a whole blob is kept for a retry to reuse";
  EXPECT_FALSE(cs.has(torn_d)) << "a torn blob is dropped";
}

ImageRecord sample_image(char c, std::vector<std::string> tags) {
  ImageRecord r;
  r.id = "sha256:" + std::string(64, c);
  r.repo_tags = std::move(tags);
  r.repo_digests = {"docker.io/library/x@sha256:" + std::string(64, static_cast<char>(c + 1))};
  r.config_json = R"({"config":{"User":"1000:1000"}})";
  r.user = "1000:1000";
  r.manifest_digest = "sha256:" + std::string(64, '9');
  r.chain_ids = {"sha256:" + std::string(64, '8')};
  r.size = 1234;
  return r;
}

TEST(Metadata, ImagesNamesAndBlobRefs) {
  TempDir t;
  Metadata md(t / "meta.db");
  md.put_image(sample_image('a', {"docker.io/library/x:1"}), {"sha256:" + std::string(64, '1')}, 1);
  auto got = md.image("sha256:" + std::string(64, 'a'));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->repo_tags, std::vector<std::string>{"docker.io/library/x:1"});
  EXPECT_EQ(got->size, 1234u);
  EXPECT_EQ(got->username(), "1000:1000");
  EXPECT_EQ(md.image_by_name("docker.io/library/x:1"), got->id);
  // The tag moves to the new image; the old one keeps its repo digest.
  md.put_image(sample_image('c', {"docker.io/library/x:1"}), {"sha256:" + std::string(64, '2')}, 2);
  EXPECT_EQ(md.image_by_name("docker.io/library/x:1"), "sha256:" + std::string(64, 'c'));
  EXPECT_TRUE(md.image("sha256:" + std::string(64, 'a')));
  EXPECT_TRUE(md.image("sha256:" + std::string(64, 'a'))->repo_tags.empty());
  EXPECT_EQ(md.images().size(), 2u);
  EXPECT_EQ(md.referenced_blobs().size(), 2u);
  EXPECT_EQ(md.image_ids_with_prefix("aaa").size(), 1u);
  EXPECT_TRUE(md.delete_image("sha256:" + std::string(64, 'a')));
  EXPECT_EQ(md.referenced_blobs().size(), 1u);
  EXPECT_FALSE(md.image_by_name("docker.io/library/x@sha256:" + std::string(64, 'b')));
}

TEST(Metadata, SurvivesReopenInWalMode) {
  TempDir t;
  {
    Metadata md(t / "meta.db");
    md.put_image(sample_image('a', {"docker.io/library/x:1"}), {}, 1);
    md.insert_snapshot("k", "", SnapshotKind::committed);
  }
  Metadata md(t / "meta.db");
  EXPECT_TRUE(md.image("sha256:" + std::string(64, 'a')));
  EXPECT_TRUE(md.snapshot("k"));
  EXPECT_TRUE(exists_nofollow(t / "meta.db"));
}

TEST(Snapshotter, PrepareCommitViewRemoveAndRecover) {
  TempDir t;
  Metadata md(t / "meta.db");
  OverlaySnapshotter s(t / "snapshots", md);
  auto m = s.prepare("base-active", "");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "bind");
  write_file(s.fs_dir("base-active") + "/f", "1");
  s.commit("base", "base-active");
  EXPECT_EQ(s.stat("base")->kind, SnapshotKind::committed);
  EXPECT_FALSE(s.stat("base-active"));
  s.prepare("mid-active", "base");
  s.commit("mid", "mid-active");
  auto c = s.prepare("container", "mid");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].type, "overlay");
  std::string opts;
  for (auto& o : c[0].options) opts += o + ",";
  EXPECT_NE(opts.find("lowerdir=" + s.fs_dir("mid") + ":" + s.fs_dir("base")), std::string::npos) << opts;
  EXPECT_NE(opts.find("upperdir=" + s.fs_dir("container")), std::string::npos);
  auto v = s.view("v", "base");
  EXPECT_EQ(v[0].type, "bind");
  EXPECT_EQ(v[0].source, s.fs_dir("base"));
  EXPECT_THROW(s.prepare("container", "mid"), Error);    // exists
  EXPECT_THROW(s.prepare("x", "no-such-parent"), Error);
  EXPECT_THROW(s.prepare("y", "container"), Error);      // parent not committed
  EXPECT_THROW(s.remove("base"), Error);                 // has children
  EXPECT_GE(s.usage("base").inodes, 2u);
  // Leftovers of a crash: an unpack snapshot and a directory without a row.
  EXPECT_THROW(s.prepare(std::string(kExtractPrefix) + "mine", "mid"), Error);  // reserved
  std::string extract = s.prepare_unpack("sha256:abc", "mid");
  EXPECT_TRUE(extract.starts_with(kExtractPrefix));
  mkdir_p(t / "snapshots/9999/fs");
  // A layer committed by an unpack that never reached its syncfs, with a child.
  s.commit_unpacked("undurable", s.prepare_unpack("undurable", "mid"), false);
  s.commit_unpacked("undurable-child", s.prepare_unpack("undurable-child", "undurable"), false);
  s.commit_unpacked("synced", s.prepare_unpack("synced", "mid"), false);
  s.mark_durable({"synced"});
  s.recover();
  EXPECT_FALSE(s.stat(extract));
  EXPECT_FALSE(s.stat("undurable"));
  EXPECT_FALSE(s.stat("undurable-child"));
  EXPECT_TRUE(s.stat("synced"));
  s.remove("synced");
  EXPECT_FALSE(exists_nofollow(t / "snapshots/9999"));
  // GC keeps what active snapshots need, drops the rest.
  s.remove("v");
  EXPECT_EQ(s.collect_garbage({}), 0u);  // container keeps mid and base
  s.remove("container");
  EXPECT_EQ(s.collect_garbage({"base"}), 1u);
  EXPECT_TRUE(s.stat("base"));
  EXPECT_FALSE(s.stat("mid"));
  EXPECT_EQ(count_entries(t / "snapshots"), 1u);
}

// ---- hostile input: depth, length, loopback, deep trees --------------------------------

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(Untrusted, DepthIsMeasuredWithoutRecursionAndMessagesAreExcerpts) {
  EXPECT_EQ(json_depth(R"({"a":[1,{"b":"[[[["}]})", 100), 3u);
  EXPECT_EQ(json_depth(nested(1000000), 32), 33u);  // stops at the limit
  EXPECT_EQ(json_depth(R"("\"[[[")", 10), 0u);      // brackets inside strings do not count
  EXPECT_THROW(parse_untrusted_json(nested(1000000), "x"), Error);
  EXPECT_NO_THROW(parse_untrusted_json(nested(kMaxJsonDepth), "x"));
  std::string big(100000, 'a');
  EXPECT_LT(excerpt(big).size(), 200u);
  EXPECT_EQ(excerpt("a\"b\n"), R"("a\"b\x0a")");
  EXPECT_LT(bounded_message(big, 100).size(), 130u);
}

// A config whose diff_ids nest 200,000 deep took the daemon down when the error message
// dumped the value (nlohmann's dump recurses).
TEST(Manifest, DiffIdsNestedDeepAreRefusedWithABoundedMessage) {
  std::string config = R"({"rootfs":{"type":"layers","diff_ids":[)" + nested(200000) + "]}}";
  try {
    config_diff_ids(config);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than"), std::string::npos) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 200u);
  }
  // Not a digest, not deep: named by type, never dumped.
  try {
    config_diff_ids(R"({"rootfs":{"diff_ids":[[[1,2],[3]]]}})");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rootfs.diff_ids[0] is not a sha256 digest: an array of 2 elements"),
              std::string::npos)
        << e.what();
  }
  std::string huge_string = R"({"rootfs":{"diff_ids":[")" + std::string(1 << 20, 'x') + R"("]}})";
  try {
    config_diff_ids(huge_string);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 300u);
  }
  EXPECT_EQ(config_user(R"({"config":{"User":"1000:1000"}})"), "1000:1000");
  EXPECT_THROW(config_user(R"({"config":{"User":")" + std::string(2000, 'u') + R"("}})"), Error);
}

// std::regex overflowed the stack on a 30,000-character realm.
TEST(Registry, ChallengeParserIsLinearForAnyInput) {
  auto c = parse_challenge(R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  EXPECT_EQ(c.scheme, "bearer");
  EXPECT_EQ(c.params["realm"], "https://auth.example/token");
  EXPECT_EQ(c.params["service"], "registry.example");
  EXPECT_EQ(c.params["scope"], "repository:a/b:pull,push");
  c = parse_challenge(R"(Basic Realm=x, charset="UTF-8", title="a \"quoted\" word")");
  EXPECT_EQ(c.scheme, "basic");
  EXPECT_EQ(c.params["realm"], "x");
  EXPECT_EQ(c.params["title"], "a \"quoted\" word");
  std::string long_realm(1 << 20, 'a');
  c = parse_challenge("Bearer realm=\"" + long_realm + "\",service=\"s\"");
  EXPECT_EQ(c.params["realm"].size(), long_realm.size());
  EXPECT_EQ(c.params["service"], "s");
  c = parse_challenge("Bearer realm=\"" + std::string(100000, '\\'));  // unterminated, all escapes
  EXPECT_EQ(c.params["realm"].size(), 50000u);
  EXPECT_EQ(parse_challenge(std::string(100000, ',')).params.size(), 0u);
}

// "127.evil.example" is a host name, not a loopback address: https like any other.
TEST(Registry, OnlyLoopbackAddressesDefaultToPlainHttp) {
  for (std::string h : {"localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000", "127.255.1.2:80", "[::1]",
                        "[::1]:5000", "[::ffff:127.0.0.1]:5000"}) {
    EXPECT_TRUE(is_loopback_host(h)) << h;
    EXPECT_EQ(resolve_endpoints({}, h)[0].base_url, "http://" + h);
  }
  for (std::string h : {"127.evil.example", "127.0.0.1.evil.example:5000", "127.1", "127.0.0.01", "localhost.example",
                        "10.0.0.1:5000", "[::2]:5000", "128.0.0.1"}) {
    EXPECT_FALSE(is_loopback_host(h)) << h;
    EXPECT_EQ(resolve_endpoints({}, h)[0].base_url, "https://" + h);
  }
}

// Directory trees far deeper than any stack (a layer reaches such depths through
// symlinks resolved inside it): the usage walk and removal have no recursion and keep
// one directory open at a time.
TEST(FsUtil, DeepTreesAreWalkedAndRemovedWithoutRecursion) {
  TempDir t;
  constexpr int kDepth = 100000;
  {
    UniqueFd fd(::open(t.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::mkdirat(fd.get(), "deep", 0755), 0);
    fd.reset(::openat(fd.get(), "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (int i = 0; i < kDepth; ++i) {
      ASSERT_EQ(::mkdirat(fd.get(), "d", 0755), 0) << i;
      if (i % 1000 == 0) ::close(::openat(fd.get(), "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      fd.reset(::openat(fd.get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      ASSERT_TRUE(fd);
    }
  }
  TreeUsage u = tree_usage(t / "deep");
  EXPECT_EQ(u.inodes, 1u + kDepth + kDepth / 1000);
  remove_tree(t / "deep");
  EXPECT_FALSE(exists_nofollow(t / "deep"));
}

// Two registries may serve the same digest: the second writer must not wait for the
// first (a hostile registry trickling a victim's layer would hold the victim's pull).
TEST(ContentStore, WritersOfOneDigestDoNotWaitForEachOther) {
  TempDir t;
  ContentStore cs(t.path());
  std::string data = "shared layer bytes";
  std::string d = sha256_digest(data);
  auto slow = cs.begin(d, data.size());
  ASSERT_TRUE(slow);
  slow->write(data.data(), 3);  // the slow writer is under way
  auto second = std::async(std::launch::async, [&] {
    auto in = cs.begin(d, data.size());
    if (!in) return false;
    in->write(data.data(), data.size());
    in->commit();
    return true;
  });
  ASSERT_EQ(second.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the second writer waited";
  EXPECT_TRUE(second.get());
  EXPECT_EQ(*cs.read(d), data);
  slow->write(data.data() + 3, data.size() - 3);
  slow->commit();  // identical content over identical content
  EXPECT_EQ(*cs.read(d), data);
  EXPECT_EQ(count_entries(t / "content/ingest"), 0u);
}

// Listing reads no config; a store of an older berthd (no user column) gets the users
// filled in once at open, and a config it cannot parse leaves the user unset.
TEST(Metadata, ListingNeedsNoConfigAndOldStoresGetTheirUser) {
  TempDir t;
  std::string db = t / "meta.db";
  {
    Metadata md(db);
    md.put_image(sample_image('a', {"docker.io/library/a:1"}), {}, 1);
    ImageRecord deep = sample_image('c', {"docker.io/library/c:1"});
    deep.config_json = R"({"config":{"User":"7"},"x":)" + nested(100000) + "}";
    md.put_image(deep, {}, 2);
  }
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, "ALTER TABLE images DROP COLUMN user", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(h);
  }
  Metadata md(db);
  auto all = md.images();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].user, "1000:1000");
  EXPECT_TRUE(all[0].config_json.empty());
  EXPECT_EQ(all[1].user, "");  // too deep to read: unset, and the store opens
  EXPECT_EQ(md.image(all[0].id)->config_json, R"({"config":{"User":"1000:1000"}})");
}

bool mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(name) != std::string::npos) return true;
  return false;
}

// libcurl (and its chain) is mapped only while pulls hold the libraries.
TEST(PullLibraries, LoadedOnDemandAndClosedWhenIdle) {
  auto& libs = PullLibraries::instance();
  libs.set_idle_unload(std::chrono::milliseconds(200));
  ASSERT_FALSE(libs.loaded());
  EXPECT_FALSE(mapped("libcurl.so"));
  unsigned loads = libs.loads();
  {
    auto lease = libs.acquire();
    EXPECT_TRUE(libs.loaded());
    EXPECT_TRUE(mapped("libcurl.so"));
    EXPECT_TRUE(mapped("libldap"));
    auto second = libs.acquire();
  }
  for (int i = 0; i < 100 && libs.loaded(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(libs.loaded());
  EXPECT_FALSE(mapped("libcurl.so"));
  EXPECT_FALSE(mapped("libldap"));
  EXPECT_FALSE(mapped("libgnutls"));
  EXPECT_FALSE(mapped("librtmp"));
  // Marked NODELETE: dlclose leaves these mapped.
  std::printf("[ info ] still mapped after unload: libssl %d, libp11-kit %d\n", mapped("libssl.so"),
              mapped("libp11-kit"));
  {
    auto lease = libs.acquire();  // loads again
    EXPECT_TRUE(mapped("libcurl.so"));
  }
  EXPECT_EQ(libs.loads(), loads + 2);
  libs.set_idle_unload(std::chrono::milliseconds(0));
  libs.unload_now();
  EXPECT_FALSE(mapped("libcurl.so"));
}

} // namespace
} // namespace berth::image
