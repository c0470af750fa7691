#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include <curl/curl.h>
#include <gtest/gtest.h>

#include "agent/lib/status_server.hpp"
#include "agent/lib/watcher.hpp"
#include "common/fs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth::agent;
using berth::test_support::TempDir;

namespace {
std::string kinds(const std::vector<FileChange>& cs) {
  std::string out;
  for (auto& c : cs) {
    out += c.kind == FileChange::Kind::added ? '+' : c.kind == FileChange::Kind::modified ? '~' : '-';
    out += std::filesystem::path(c.path).filename().string();
    out += ' ';
  }
  return out;
}

size_t collect(char* p, size_t s, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, s * n);
  return s * n;
}

std::string http_get(int port, const std::string& path, long* code) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, ("http://127.0.0.1:" + std::to_string(port) + path).c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
  curl_easy_cleanup(c);
  return body;
}
} // namespace

TEST(Watcher, ScansAddsModificationsAndRemovalsIgnoringDotfilesAndDirs) {
  TempDir d("berthlet-test");
  ManifestWatcher w({d.path(), d.path() + "/later"});
  EXPECT_EQ(kinds(w.scan()), "");
  berth::write_file(d.path() + "/a.yaml", "x");
  berth::write_file(d.path() + "/.hidden.yaml", "x");
  berth::mkdir_p(d.path() + "/sub");
  berth::write_file(d.path() + "/sub/b.yaml", "x");
  w.drain();
  EXPECT_EQ(kinds(w.scan()), "+a.yaml ");
  EXPECT_EQ(kinds(w.scan()), "");
  berth::write_file(d.path() + "/a.yaml", "longer");
  EXPECT_EQ(kinds(w.scan()), "~a.yaml ");
  // a directory that appears after start is picked up by the next scan
  berth::mkdir_p(d.path() + "/later");
  berth::write_file(d.path() + "/later/c.json", "{}");
  EXPECT_EQ(kinds(w.scan()), "+c.json ");
  ::unlink((d.path() + "/a.yaml").c_str());
  EXPECT_EQ(kinds(w.scan()), "-a.yaml ");
}

TEST(Watcher, InotifyWakesUpOnChange) {
  TempDir d("berthlet-test");
  ManifestWatcher w({d.path()});
  w.drain();
  berth::write_file(d.path() + "/p.yaml", "x");
  char buf[4096];
  EXPECT_GT(::read(w.fd(), buf, sizeof buf), 0); // readable without waiting for the periodic scan
}

TEST(StatusEndpoint, ServesPodsManifestsAndHealth) {
  StatusStore store;
  StatusServer server(store, "127.0.0.1", 0);
  PodStatus st;
  st.phase = "Running";
  st.conditions.push_back({"Ready", true, "", "", "2026-01-01T00:00:00Z"});
  ContainerStatus cs;
  cs.name = "c";
  cs.state.kind = ContainerState::Kind::waiting;
  cs.state.reason = "CrashLoopBackOff";
  st.container_statuses.push_back(cs);
  store.set_pod("u1", {{"metadata", {{"name", "p-n"}, {"namespace", "default"}, {"uid", "u1"}}}, {"status", to_json(st)}});
  store.set_manifest("/m/bad.yaml", "", "/m/bad.yaml: spec.containers[0].image: required");
  long code = 0;
  EXPECT_EQ(http_get(server.port(), "/healthz", &code), "ok");
  EXPECT_EQ(code, 200);
  auto pods = nlohmann::json::parse(http_get(server.port(), "/pods", &code));
  EXPECT_EQ(pods["kind"], "PodList");
  ASSERT_EQ(pods["items"].size(), 1u);
  EXPECT_EQ(pods["items"][0]["status"]["conditions"][0]["status"], "True");
  EXPECT_EQ(pods["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "CrashLoopBackOff");
  auto one = nlohmann::json::parse(http_get(server.port(), "/pods/default/p-n", &code));
  EXPECT_EQ(one["metadata"]["uid"], "u1");
  auto m = nlohmann::json::parse(http_get(server.port(), "/manifests", &code));
  EXPECT_EQ(m["manifests"][0]["error"], "/m/bad.yaml: spec.containers[0].image: required");
  http_get(server.port(), "/nothing", &code);
  EXPECT_EQ(code, 404);
  store.remove_pod("u1");
  EXPECT_EQ(nlohmann::json::parse(http_get(server.port(), "/pods", &code))["items"].size(), 0u);
}
