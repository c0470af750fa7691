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
};

class RegistryServer {
public:
  explicit RegistryServer(const RegistryOptions& o = {}) {
    std::vector<std::string> args = {"/usr/bin/python3", tests_lib() + "/registry.py", "serve", "--dir", dir_.path()};
    for (auto& u : o.users) args.insert(args.end(), {"--user", u});
    if (o.token) args.push_back("--token");
    if (o.anonymous_pull) args.push_back("--anonymous-pull");
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    if (posix_spawn(&pid_, cargs[0], &fa, nullptr, cargs.data(), environ) != 0) throw std::runtime_error("spawn registry");
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      stop();
      throw std::runtime_error("registry.py serve did not start: \"" + line + "\"");
    }
    addr_ = j["addr"];
    log_ = j["log"];
  }
  ~RegistryServer() { stop(); }
  const std::string& addr() const { return addr_; }
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
    std::vector<std::string> args = {"/usr/bin/python3", tests_lib() + "/oci_image.py", "push", "--registry", addr_,
                                     "--name", name, "--kind", kind, "--compression", compression, "--format", format};
    if (!user.empty()) args.insert(args.end(), {"--user", user});
    return nlohmann::json::parse(run(args));
  }

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
  TempDir dir_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  std::string addr_, log_;
};

} // namespace berth::image::testing
