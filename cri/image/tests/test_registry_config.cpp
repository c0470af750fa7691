// Unit tests of the registry configuration the ecosystem writes: containerd's certs.d
// hosts.toml (and Docker's certificate files), docker/podman auth.json, and docker
// credential helpers run as real processes (scripts written here, on PATH).
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/registry_auth.hpp"
#include "cri/image/registry_client.hpp"
#include "cri/image/registry_hosts.hpp"
#include "test_helpers.hpp"

using namespace berth;
using namespace berth::image;
using berth::image::testing::TempDir;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void write_script(const std::string& path, const std::string& body) {
  write_file(path, "#!/bin/sh\n" + body);
  ::chmod(path.c_str(), 0755);
}

// PATH with `dir` first, for the test's credential helpers; restored afterwards.
struct PathWith {
  std::string old;
  explicit PathWith(const std::string& dir) {
    const char* p = std::getenv("PATH");
    old = p ? p : "";
    ::setenv("PATH", (dir + ":" + old).c_str(), 1);
  }
  ~PathWith() { ::setenv("PATH", old.c_str(), 1); }
};

} // namespace

TEST(HostsToml, HostsInFileOrderThenTheServer) {
  std::vector<std::string> warnings;
  auto eps = parse_hosts_toml(R"(
server = "https://registry-1.docker.io"
skip_verify = false
[host."https://zz-first.example"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [["client.pem", "client.key"]]
  [host."https://zz-first.example".header]
    X-Test = ["a", "b"]
[host."http://aa-second.example:5000/prefix"]
  capabilities = ["pull"]
  ca = ["/abs/a.pem", "b.pem"]
  skip_verify = true
  override_path = true
  client = "both.pem"
  colour = "blue"
)", "/etc/certs.d/docker.io", "docker.io", &warnings);
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].base_url, "https://zz-first.example");
  EXPECT_EQ(eps[0].api_path, "/v2");
  EXPECT_TRUE(eps[0].mirror);
  EXPECT_EQ(eps[0].capabilities, unsigned(kCapPull | kCapResolve));
  EXPECT_EQ(eps[0].ca_files, std::vector<std::string>{"/etc/certs.d/docker.io/ca.pem"});
  EXPECT_EQ(eps[0].client_cert, "/etc/certs.d/docker.io/client.pem");
  EXPECT_EQ(eps[0].client_key, "/etc/certs.d/docker.io/client.key");
  EXPECT_EQ(eps[0].headers, (std::vector<std::string>{"X-Test: a", "X-Test: b"}));
  EXPECT_EQ(eps[1].base_url, "http://aa-second.example:5000");
  EXPECT_EQ(eps[1].api_path, "/prefix");
  EXPECT_EQ(eps[1].capabilities, unsigned(kCapPull));
  EXPECT_TRUE(eps[1].skip_verify);
  EXPECT_EQ(eps[1].ca_files, (std::vector<std::string>{"/abs/a.pem", "/etc/certs.d/docker.io/b.pem"}));
  EXPECT_EQ(eps[1].client_key, "/etc/certs.d/docker.io/both.pem");
  EXPECT_EQ(eps[2].base_url, "https://registry-1.docker.io");
  EXPECT_FALSE(eps[2].mirror);
  EXPECT_EQ(eps[2].capabilities, unsigned(kCapAll));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("hosts.toml:16: host.\"http://aa-second.example:5000/prefix\".colour: unknown key"),
            std::string::npos)
      << warnings[0];
}

TEST(HostsToml, DefaultServerAndPathsAsContainerd) {
  auto eps = parse_hosts_toml("[host.\"https://m.example/sub\"]\n", "/d", "quay.io");
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(eps[0].api_path, "/sub/v2");
  EXPECT_EQ(eps[1].base_url, "https://quay.io");
  EXPECT_EQ(parse_hosts_toml("", "/d", "127.0.0.1:5000")[0].base_url, "http://127.0.0.1:5000");
  EXPECT_EQ(parse_hosts_toml("", "/d", "docker.io")[0].base_url, "https://registry-1.docker.io");
}

TEST(HostsToml, BadValuesNameFileLineAndKey) {
  EXPECT_NE(error_of([] { parse_hosts_toml("[host.\"https://m\"]\ncapabilities = [\"fly\"]\n", "/d", "x.io"); })
                .find("/d/hosts.toml:2: host.\"https://m\".capabilities: unknown capability \"fly\""),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_hosts_toml("server = \"ftp://x\"\n", "/d", "x.io"); }).find("/d/hosts.toml:1: server"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_hosts_toml("skip_verify = \"yes\"\n", "/d", "x.io"); })
                .find("skip_verify: expected true or false"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_hosts_toml("server = [\n", "/d", "x.io"); }).find("/d/hosts.toml:"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_hosts_toml("[host.\"https://m\".header]\nX = \"a\\nb\"\n", "/d", "x.io"); })
                .find("line break"),
            std::string::npos);
}

TEST(HostsDir, HostThenDefaultPerRootAndLegacyFiles) {
  TempDir a, b;
  mkdir_p(b / "quay.io");
  mkdir_p(a / "_default");
  mkdir_p(b / "127.0.0.1:5000");
  // the first root's _default beats the second root's host directory, as containerd's
  EXPECT_EQ(*find_host_dir({a.path(), b.path()}, "quay.io"), a / "_default");
  EXPECT_EQ(*find_host_dir({b.path()}, "quay.io"), b / "quay.io");
  EXPECT_FALSE(find_host_dir({b.path()}, "ghcr.io"));
  EXPECT_NE(error_of([&] { find_host_dir({b.path()}, ".."); }).find("cannot name a directory"), std::string::npos);
  write_file(b / "127.0.0.1:5000/ca.crt", "x");
  write_file(b / "127.0.0.1:5000/client.cert", "x");
  write_file(b / "127.0.0.1:5000/client.key", "x");
  auto eps = load_host_dir({b.path()}, "127.0.0.1:5000");
  ASSERT_TRUE(eps);
  ASSERT_EQ(eps->size(), 1u);
  EXPECT_EQ((*eps)[0].base_url, "https://127.0.0.1:5000");  // the files mean TLS
  EXPECT_EQ((*eps)[0].ca_files, std::vector<std::string>{b / "127.0.0.1:5000/ca.crt"});
  EXPECT_EQ((*eps)[0].client_cert, b / "127.0.0.1:5000/client.cert");
  EXPECT_EQ((*eps)[0].client_key, b / "127.0.0.1:5000/client.key");
  // with a hosts.toml the legacy files are not read (containerd's rule)
  write_file(b / "127.0.0.1:5000/hosts.toml", "server = \"https://127.0.0.1:5000\"\n");
  eps = load_host_dir({b.path()}, "127.0.0.1:5000");
  EXPECT_TRUE((*eps)[0].ca_files.empty());
  EXPECT_EQ((*eps)[0].base_url, "https://127.0.0.1:5000");
  // a berthd [registry] table for the host wins over certs.d
  std::vector<RegistryHost> own = {{.host = "127.0.0.1:5000", .plain_http = true}};
  EXPECT_EQ(resolve_endpoints(own, "127.0.0.1:5000", {b.path()})[0].base_url, "http://127.0.0.1:5000");
  EXPECT_EQ(resolve_endpoints({}, "127.0.0.1:5000", {b.path()})[0].base_url, "https://127.0.0.1:5000");
  write_file(b / "quay.io/hosts.toml", std::string(kMaxHostsFileBytes + 1, '#'));
  EXPECT_NE(error_of([&] { load_host_dir({b.path()}, "quay.io"); }).find("larger than"), std::string::npos);
}

TEST(AuthJson, AuthsEntriesAsDockerAndPodmanWriteThem) {
  AuthSources none;
  std::string doc = R"({"auths": {
    "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
    "quay.io": {"auth": "aG9zdDpob3N0cHc="},
    "quay.io/org": {"username": "org", "password": "orgpw"},
    "ghcr.io": {"identitytoken": "refresh"},
    "empty.io": {}
  }})";
  auto c = credentials_from_auth_json(doc, "/f", "docker.io", "library/busybox", none);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "hub");
  EXPECT_EQ(c->password, "hubpw");
  c = credentials_from_auth_json(doc, "/f", "quay.io", "org/app", none);
  EXPECT_EQ(c->username, "org");  // the most specific key wins
  c = credentials_from_auth_json(doc, "/f", "quay.io", "organisation/app", none);
  EXPECT_EQ(c->username, "host");  // "quay.io/org" is no prefix of "quay.io/organisation"
  EXPECT_EQ(credentials_from_auth_json(doc, "/f", "ghcr.io", "x", none)->identity_token, "refresh");
  EXPECT_FALSE(credentials_from_auth_json(doc, "/f", "empty.io", "x", none));
  EXPECT_FALSE(credentials_from_auth_json(doc, "/f", "other.io", "x", none));
}

TEST(AuthJson, GarbageNamesTheFileAndMissingFilesAreFine) {
  AuthSources none;
  EXPECT_NE(error_of([&] { credentials_from_auth_json("{not json", "/etc/berth/auth.json", "q.io", "x", none); })
                .find("auth file /etc/berth/auth.json"),
            std::string::npos);
  EXPECT_NE(error_of([&] { credentials_from_auth_json(R"({"auths": {"q.io": {"auth": "!!"}}})", "/a", "q.io", "x", none); })
                .find("not base64 of user:password"),
            std::string::npos);
  AuthSources missing;
  missing.files = {"/nonexistent/auth.json"};
  EXPECT_FALSE(credentials_from_auth_files(missing, "q.io", "x"));
  // the CRI's AuthConfig comes first, the files after
  TempDir d;
  write_file(d / "auth.json", R"({"auths": {"q.io": {"auth": "Zjpm"}}})");
  AuthSources files;
  files.files = {"/nonexistent", d / "auth.json"};
  EXPECT_EQ(resolve_credentials({}, "q.io", {}, files, "x").username, "f");
  EXPECT_EQ(resolve_credentials({}, "q.io", {.username = "cri", .password = "p"}, files, "x").username, "cri");
}

TEST(CredentialHelper, HelpersStoreAndFailures) {
  TempDir d;
  // the protocol: "get", the server URL on stdin, {"Username","Secret"} on stdout
  write_script(d / "docker-credential-berthtest",
               "[ \"$1\" = get ] || exit 3\nread url\n"
               "case \"$url\" in\n"
               "  https://index.docker.io/v1/) echo '{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"idt\"}';;\n"
               "  q.io) echo '{\"Username\":\"helper\",\"Secret\":\"s3\"}';;\n"
               "  *) echo 'credentials not found in native keychain'; exit 1;;\n"
               "esac\n");
  write_script(d / "docker-credential-hang", "exec sleep 30\n");
  write_script(d / "docker-credential-broken", "echo 'cannot reach the keyring' >&2; exit 2\n");
  PathWith path(d.path());
  AuthSources s;
  s.helper_timeout = std::chrono::milliseconds(500);
  std::string doc = R"({"credHelpers": {"q.io": "berthtest", "docker.io": "berthtest", "slow.io": "hang",
                        "bad.io": "broken", "evil.io": "../../bin/sh"}, "credsStore": "berthtest",
                        "auths": {"q.io": {"auth": "aWdub3JlZDp4"}}})";
  auto c = credentials_from_auth_json(doc, "/f", "q.io", "x", s);
  EXPECT_EQ(c->username, "helper");  // credHelpers before auths
  EXPECT_EQ(c->password, "s3");
  EXPECT_EQ(credentials_from_auth_json(doc, "/f", "docker.io", "x", s)->identity_token, "idt");
  EXPECT_FALSE(credentials_from_auth_json(doc, "/f", "nowhere.io", "x", s));  // credsStore: not found
  auto start = std::chrono::steady_clock::now();
  std::string err = error_of([&] { credentials_from_auth_json(doc, "/f", "slow.io", "x", s); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(err.find("docker-credential-hang get slow.io: no answer within 500 ms (killed)"), std::string::npos) << err;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);  // reaped: no zombie left
  err = error_of([&] { credentials_from_auth_json(doc, "/f", "bad.io", "x", s); });
  EXPECT_NE(err.find("cannot reach the keyring"), std::string::npos) << err;
  err = error_of([&] { credentials_from_auth_json(doc, "/f", "evil.io", "x", s); });
  EXPECT_NE(err.find("not a helper name"), std::string::npos) << err;
}
