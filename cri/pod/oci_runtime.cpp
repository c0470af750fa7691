#include "cri/pod/oci_runtime.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/subprocess.hpp"

namespace berth::cri {
namespace {

// runc's, crun's and berth's wording for an id they do not hold.
bool says_not_found(const std::string& text) {
  return text.find("does not exist") != std::string::npos || text.find("not found") != std::string::npos ||
         text.find("no such file or directory") != std::string::npos;
}

// The runtime's error: the last "msg" of a JSON log line, else its last stderr line.
std::string runtime_message(const CommandResult& r) {
  std::string text(trim(r.err.empty() ? r.out : r.err));
  auto nl = text.rfind('\n');
  std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
  json j = json::parse(line, nullptr, false);
  if (j.is_object() && j.contains("msg") && j["msg"].is_string()) line = j["msg"].get<std::string>();
  if (line.size() > 4096) line.resize(4096);
  return line.empty() ? r.describe() : line;
}

} // namespace

std::vector<std::string> RuntimeHandler::global_args() const {
  std::vector<std::string> out = args;
  if (!root.empty()) out.insert(out.end(), {"--root", root});
  if (systemd_cgroup) out.push_back("--systemd-cgroup");
  return out;
}

std::string OciRuntime::call(const std::vector<std::string>& args, std::string_view input, bool* not_found) const {
  std::vector<std::string> argv = h_.global_args();
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions opts;
  opts.input = input;
  opts.timeout = h_.timeout;
  opts.max_output = 4 << 20;
  CommandResult r = run_command(h_.binary, argv, opts);
  if (r.ok()) return r.out;
  std::string msg = runtime_message(r);
  if (not_found && says_not_found(msg)) {
    *not_found = true;
    return {};
  }
  fail("{} {}: {}", h_.binary, args.empty() ? "" : args[0], msg);
}

void OciRuntime::kill(const std::string& id, int signal, bool all) const {
  std::vector<std::string> args = {"kill"};
  if (all) args.push_back("--all");
  args.insert(args.end(), {id, std::to_string(signal)});
  bool gone = false;
  try {
    call(args, {}, &gone);
  } catch (const Error& e) {
    // runc says "container not running" for a stopped container: nothing to signal.
    if (std::string(e.what()).find("not running") != std::string::npos) return;
    throw;
  }
}

void OciRuntime::remove(const std::string& id) const {
  bool gone = false;
  call({"delete", "--force", id}, {}, &gone);
}

void OciRuntime::update(const std::string& id, const json& resources) const {
  call({"update", "--resources", "-", id}, resources.dump(), nullptr);
}

std::optional<json> OciRuntime::state(const std::string& id) const {
  bool gone = false;
  std::string out = call({"state", id}, {}, &gone);
  if (gone) return std::nullopt;
  json j = json::parse(out, nullptr, false);
  if (!j.is_object()) fail("{} state {}: unparsable output", h_.binary, id);
  return j;
}

std::vector<std::string> OciRuntime::list() const {
  std::string out = call({"list", "--format", "json"}, {}, nullptr);
  json j = json::parse(out, nullptr, false);
  std::vector<std::string> ids;
  if (j.is_array())
    for (const auto& c : j)
      if (c.is_object() && c.contains("id") && c["id"].is_string()) ids.push_back(c["id"].get<std::string>());
  return ids;
}

} // namespace berth::cri
