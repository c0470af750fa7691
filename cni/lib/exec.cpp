#include "cni/lib/exec.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/ranges.h>

#include "common/fs.hpp"

extern char** environ;

namespace berth::cni {

namespace {

// Our environment minus any CNI_* variables, plus the invocation's (libcni's Args.AsEnv).
std::vector<std::string> plugin_env(const PluginInvocation& inv) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (!starts_with(*e, "CNI_")) env.emplace_back(*e);
  std::vector<std::string> kv;
  for (const auto& [k, v] : inv.args) kv.push_back(k + "=" + v);
  env.push_back("CNI_COMMAND=" + inv.command);
  env.push_back("CNI_CONTAINERID=" + inv.container_id);
  env.push_back("CNI_NETNS=" + inv.netns);
  env.push_back("CNI_IFNAME=" + inv.ifname);
  env.push_back(fmt::format("CNI_ARGS={}", fmt::join(kv, ";")));
  env.push_back(fmt::format("CNI_PATH={}", fmt::join(inv.path, ":")));
  return env;
}

[[noreturn]] void plugin_failed(const std::string& path, const PluginInvocation& inv, int status,
                                const std::string& out, const std::string& err) {
  json j = json::parse(out, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("msg")) {
    uint32_t code = j.value("code", 0u);
    std::string msg = j["msg"].is_string() ? j["msg"].get<std::string>() : j["msg"].dump();
    std::string details = j.contains("details") && j["details"].is_string() ? j["details"].get<std::string>() : "";
    std::string text = details.empty() ? msg : fmt::format("{}; {}", msg, details);
    throw PluginError(code, fmt::format("{} {}: error {}: {}", path, inv.command, code, text), details);
  }
  std::string why = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                        : fmt::format("exit status {}", WEXITSTATUS(status));
  std::string text = std::string(trim(err.empty() ? out : err));
  if (text.size() > 2000) text.resize(2000);
  throw PluginError(999, fmt::format("{} {}: {}{}{}", path, inv.command, why, text.empty() ? "" : ": ", text), "");
}

} // namespace

std::string find_plugin(const std::string& type, const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    std::string p = path_join(d, type);
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0) return p;
  }
  fail("failed to find plugin \"{}\" in path [{}]", type, fmt::join(dirs, " "));
}

std::string run_plugin(const std::string& path, const PluginInvocation& inv, std::string_view stdin_data,
                       std::chrono::milliseconds timeout, bool pass_stderr) {
  std::vector<std::string> env = plugin_env(inv);
  RunOptions opts;
  opts.env = &env;
  opts.input = stdin_data;
  opts.timeout = timeout;
  CommandResult r = run_command(path, {}, opts);
  if (pass_stderr && !r.err.empty()) write_all(2, r.err);
  if (r.timed_out)
    throw PluginError(999, fmt::format("{} {}: timed out after {} ms (killed)", path, inv.command, timeout.count()), "");
  if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) plugin_failed(path, inv, r.status, r.out, r.err);
  return r.out;
}

} // namespace berth::cni
