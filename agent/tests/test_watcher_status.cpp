#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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
  RuntimeHealth h;
  h.endpoint = "unix:///run/x.sock";
  h.relist_ok = h.status_ok = true;
  h.last_relist_ok = RuntimeHealth::Clock::now();
  h.conditions = {{"RuntimeReady", "", "", true}, {"NetworkReady", "", "", true}};
  store.set_runtime_health(h);
  EXPECT_EQ(http_get(server.port(), "/healthz", &code), "ok");
  EXPECT_EQ(code, 200);
  EXPECT_NE(http_get(server.port(), "/healthz?verbose", &code).find("[+]runtime ok\n[+]network ok\n[+]syncloop ok"),
            std::string::npos);
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

TEST(StatusEndpoint, HealthzFailsUntilTheRuntimeAnswers) {
  // A wrong endpoint: berthlet starts, but no pod can run. /healthz must say so.
  StatusStore store;
  StatusServer server(store, "127.0.0.1", 0);
  RuntimeHealth h;
  h.endpoint = "unix:///nonexistent.sock";
  h.relist_error = "CRI ListPodSandbox: code 14: failed to connect to all addresses";
  store.set_runtime_health(h);
  long code = 0;
  auto body = http_get(server.port(), "/healthz", &code);
  EXPECT_EQ(code, 503);
  EXPECT_NE(body.find("[-]runtime failed: runtime unix:///nonexistent.sock unavailable: CRI ListPodSandbox: code 14"),
            std::string::npos) << body;
  EXPECT_NE(body.find("[-]syncloop failed: no successful relist of the runtime yet"), std::string::npos) << body;
  EXPECT_NE(body.find("healthz check failed"), std::string::npos) << body;
}

TEST(Health, ConditionsAndRelistAge) {
  using namespace std::chrono_literals;
  auto now = RuntimeHealth::Clock::now();
  RuntimeHealth h;
  h.endpoint = "unix:///r.sock";
  h.relist_ok = h.status_ok = true;
  h.last_relist_ok = now - 1s;
  h.conditions = {{"RuntimeReady", "", "", true}, {"NetworkReady", "NetworkPluginNotReady", "cni config uninitialized", false}};
  auto r = evaluate_health(h, now, 60s, false);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.body.find("[+]runtime ok"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("[-]network failed: NetworkReady is false: NetworkPluginNotReady: cni config uninitialized"),
            std::string::npos) << r.body;
  h.conditions = {{"RuntimeReady", "Down", "", false}, {"NetworkReady", "", "", true}};
  r = evaluate_health(h, now, 60s, false);
  EXPECT_NE(r.body.find("[-]runtime failed: RuntimeReady is false: Down"), std::string::npos) << r.body;
  h.conditions = {{"RuntimeReady", "", "", true}};
  EXPECT_NE(evaluate_health(h, now, 60s, false).body.find("the runtime reports no NetworkReady condition"),
            std::string::npos);
  h.conditions = {{"RuntimeReady", "", "", true}, {"NetworkReady", "", "", true}};
  EXPECT_TRUE(evaluate_health(h, now, 60s, false).ok);
  EXPECT_EQ(evaluate_health(h, now, 60s, false).body, "ok");
  // the relist has not succeeded for longer than the threshold (a runtime that hangs)
  r = evaluate_health(h, now + 90s, 60s, false);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.body.find("[-]syncloop failed: last successful relist 91s ago (threshold 60s)"), std::string::npos) << r.body;
  h.status_ok = false;
  h.status_error = "CRI Status: code 4: deadline";
  EXPECT_NE(evaluate_health(h, now, 60s, false).body.find("[-]runtime failed: runtime unix:///r.sock Status: CRI Status"),
            std::string::npos);
}

TEST(StatusEndpoint, IdleConnectionsAreBounded) {
  // Each accepted connection is one of berthlet's fds: beyond the limits they wait in the
  // kernel's backlog (or are closed), never in berthlet.
  StatusStore store;
  StatusServer server(store, "127.0.0.1", 0);
  auto fds_now = [] {
    int n = 0;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) (void)e, n++;
    return n;
  };
  int before = fds_now();
  std::vector<int> clients;
  for (int i = 0; i < 300; i++) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(server.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(s);
      break;
    }
    clients.push_back(s);
  }
  ::usleep(300 * 1000);
  // our own client sockets are 300 of them; the server's accepted ones are the rest
  int server_side = fds_now() - before - static_cast<int>(clients.size());
  EXPECT_LE(server_side, static_cast<int>(StatusServer::kMaxConnectionsPerIp) + 2);
  for (int s : clients) ::close(s);
}
