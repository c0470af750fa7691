// A docker-registry process for a test (tests/lib/registry.py serve), and fixture images
// pushed to it with tests/lib/oci_image.py. The registry stops when this object goes or
// when the test process dies (its stdin pipe closes).
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_helpers.hpp"

extern char** environ;

namespace berth::image::testing {

inline std::string tests_lib() {
  const char* env = std::getenv("BERTH_TESTS_LIB");
  return env ? env : BERTH_TESTS_LIB;
}

// Runs a command, returns its stdout; throws on a non-zero exit.
inline std::string run(const std::vector<std::string>& argv) {
  std::string cmd;
  for (auto& a : argv) cmd += "'" + a + "' ";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd);
  return out;
}

struct RegistryOptions {
  std::vector<std::string> users;  // "user:password"
  bool token = false;
  bool anonymous_pull = false;
  bool tls = false;  // HTTPS with a self-signed certificate (ca_file())
};

// A helper process that prints one JSON line when ready and stops when its stdin closes.
class ServeProcess {
public:
  explicit ServeProcess(std::vector<std::string> args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    int rc = posix_spawn(&pid_, cargs[0], &fa, nullptr, cargs.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    if (rc != 0) {
      ::close(out[0]);
      stop();
      throw std::runtime_error("spawn " + args[1]);
    }
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    info_ = nlohmann::json::parse(line, nullptr, false);
    if (info_.is_discarded() || !info_.is_object()) {
      stop();
      throw std::runtime_error(args[1] + " did not start: \"" + line + "\"");
    }
  }
  ~ServeProcess() { stop(); }
  const nlohmann::json& info() const { return info_; }

private:
  void stop() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  pid_t pid_ = -1;
  int stdin_ = -1;
  nlohmann::json info_;
};

inline std::vector<std::string> registry_args(const std::string& dir, const RegistryOptions& o) {
  std::vector<std::string> args = {"/usr/bin/python3", tests_lib() + "/registry.py", "serve", "--dir", dir};
  for (auto& u : o.users) args.insert(args.end(), {"--user", u});
  if (o.token) args.push_back("--token");
  if (o.anonymous_pull) args.push_back("--anonymous-pull");
  if (o.tls) args.push_back("--tls");
  return args;
}

class RegistryServer {
public:
  explicit RegistryServer(const RegistryOptions& o = {})
      : proc_(registry_args(dir_.path(), o)), addr_(proc_.info()["addr"]), log_(proc_.info()["log"]),
        ca_file_(o.tls ? proc_.info()["ca_file"].get<std::string>() : std::string()),
        token_url_(o.token ? proc_.info()["token_url"].get<std::string>() : std::string()) {}
  const std::string& token_url() const { return token_url_; }
  const std::string& addr() const { return addr_; }
  const std::string& ca_file() const { return ca_file_; }
  std::string storage() const { return dir_.path() + "/storage"; }

  // Successful blob GETs logged for the repository (and digest, when given).
  int blob_gets(const std::string& repo, const std::string& digest = "") const {
    std::ifstream f(log_);
    std::string line;
    int n = 0;
    std::string prefix = "/v2/" + repo + "/blobs/" + digest;
    while (std::getline(f, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object() || j.value("msg", "") != "response completed") continue;
      if (j.value("http.request.method", "") != "GET") continue;
      std::string uri = j.value("http.request.uri", "");
      int status = j.value("http.response.status", 0);
      if (uri.rfind(prefix, 0) == 0 && (status == 200 || status == 206)) ++n;
    }
    return n;
  }

  // Pushes a fixture; returns oci_image.py's summary (manifest, index, config, layers, ...).
  nlohmann::json push(const std::string& name, const std::string& kind, const std::string& compression = "gzip",
                      const std::string& format = "oci", const std::string& user = "") const {
    std::vector<std::string> args = {"/usr/bin/python3", tests_lib() + "/oci_image.py", "push", "--registry",
                                     ca_file_.empty() ? addr_ : "https://" + addr_, "--name", name, "--kind", kind,
                                     "--compression", compression, "--format", format};
    if (!user.empty()) args.insert(args.end(), {"--user", user});
    if (!ca_file_.empty()) args.insert(args.end(), {"--ca-file", ca_file_});
    return nlohmann::json::parse(run(args));
  }

private:
  TempDir dir_;
  ServeProcess proc_;
  std::string addr_, log_, ca_file_, token_url_;
};

// tests/../flaky_proxy.py in front of a registry.
class FlakyProxy {
public:
  explicit FlakyProxy(const std::string& upstream)
      : proc_({"/usr/bin/python3", std::string(BERTH_IMAGE_TESTS_DIR) + "/flaky_proxy.py", "--upstream", upstream}),
        addr_(proc_.info()["addr"]) {}
  const std::string& addr() const { return addr_; }
  nlohmann::json stats() const { return nlohmann::json::parse(run({"curl", "-s", "http://" + addr_ + "/_stats"})); }

private:
  ServeProcess proc_;
  std::string addr_;
};

// cri/image/tests/hostile_registry.py serving one of its scenarios.
class HostileServer {
public:
  explicit HostileServer(const std::string& scenario)
      : proc_({"/usr/bin/python3", std::string(BERTH_IMAGE_TESTS_DIR) + "/hostile_registry.py", "--scenario", scenario}),
        addr_(proc_.info()["addr"]) {}
  const std::string& addr() const { return addr_; }
  const nlohmann::json& info() const { return proc_.info(); }
  // {"log": [{"path", "status", "sent", "complete"}], "started": [paths]}
  nlohmann::json log() const { return nlohmann::json::parse(run({"curl", "-s", "http://" + addr_ + "/_log"})); }

private:
  ServeProcess proc_;
  std::string addr_;
};

} // namespace berth::image::testing
