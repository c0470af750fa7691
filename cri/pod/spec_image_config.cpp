// What berthd takes from an image's config (untrusted: it came from a registry), the
// image's stop signal, and the bounded JSON parser shared with the seccomp profile reader.
#include <csignal>
#include <set>

#include "cri/pod/spec_internal.hpp"

namespace berth::cri {
namespace spec {

json parse_bounded_json(std::string_view text, size_t max_bytes, int max_depth, std::string_view what) {
  if (text.size() > max_bytes) invalid("{}: {} bytes, at most {} are accepted", what, text.size(), max_bytes);
  // nlohmann's parser keeps its own stack, but deep documents are slow to build and to
  // tear down: refuse them as they are read.
  struct TooDeep {};
  auto limit = [max_depth](int depth, json::parse_event_t, json&) {
    if (depth > max_depth) throw TooDeep{};
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit);
  } catch (const TooDeep&) {
    invalid("{}: nested deeper than {} levels", what, max_depth);
  } catch (const json::exception& e) {
    invalid("{}: invalid JSON: {}", what, e.what());
  }
}

} // namespace spec

namespace {

using spec::invalid;

constexpr size_t kMaxImageConfigBytes = 8 << 20;  // history can be long; the rest is small
constexpr int kMaxImageConfigDepth = 32;
constexpr size_t kMaxListEntries = 65536;

std::vector<std::string> string_list(const JsonView& config, std::string_view key) {
  JsonView list = config[key];
  if (list.present() && list.raw().is_array() && list.size() > kMaxListEntries)
    list.bad(fmt::format("{} entries, at most {} are accepted", list.size(), kMaxListEntries));
  auto out = config.string_list(key);
  for (size_t i = 0; i < out.size(); i++)
    if (out[i].find('\0') != std::string::npos) list.at(i).bad("must not contain a NUL byte");
  return out;
}

std::string string_field(const JsonView& config, std::string_view key) {
  auto value = config.opt_string(key).value_or("");
  spec::check_text(value, config[key].path(), 4096);
  return value;
}

struct SignalName {
  std::string_view name;
  int number;
};
constexpr SignalName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},     {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},       {"FPE", SIGFPE},   {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},     {"CONT", SIGCONT}, {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},     {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"POLL", SIGPOLL}, {"PWR", SIGPWR},       {"SYS", SIGSYS}};

std::optional<int> small_number(std::string_view s) {
  if (s.empty() || s.size() > 3) return std::nullopt;
  int n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

} // namespace

ImageConfig parse_image_config(std::string_view image_config_json) {
  json doc = spec::parse_bounded_json(image_config_json, kMaxImageConfigBytes, kMaxImageConfigDepth, "image config");
  try {
    JsonView root(doc, "");
    root.expect_object();
    ImageConfig out;
    JsonView config = root["config"];
    if (!config.present()) return out;
    config.expect_object();
    out.entrypoint = string_list(config, "Entrypoint");
    out.cmd = string_list(config, "Cmd");
    out.env = string_list(config, "Env");
    out.working_dir = string_field(config, "WorkingDir");
    out.user = string_field(config, "User");
    out.stop_signal = string_field(config, "StopSignal");
    std::set<std::string> volumes;
    config["Volumes"].each_member([&](const std::string& path, const JsonView& v) {
      if (volumes.size() >= kMaxListEntries) v.bad("too many volumes");
      spec::check_text(path, v.path(), 4096);
      // Docker takes "data" as "/data"; cleaning keeps ".." from climbing out.
      volumes.insert(spec::clean_path("/" + path));
    });
    out.volumes.assign(volumes.begin(), volumes.end());
    return out;
  } catch (Error& e) {
    if (e.code() == 0) throw Error(EINVAL, "image config: " + e.message());
    throw;
  }
}

int parse_stop_signal(std::string_view signal) {
  if (signal.empty()) return SIGTERM;
  std::string up;
  for (char c : signal) up += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  std::string_view s = up;
  if (s.rfind("SIG", 0) == 0) s.remove_prefix(3);
  if (auto n = small_number(s); n && *n >= 1 && *n <= SIGRTMAX) return *n;
  for (const auto& entry : kSignals)
    if (entry.name == s) return entry.number;
  // RTMIN, RTMIN+n, RTMAX, RTMAX-n, as moby's ParseSignal and kill(1).
  for (auto [prefix, base, sign] : {std::tuple{std::string_view("RTMIN"), SIGRTMIN, 1},
                                    std::tuple{std::string_view("RTMAX"), SIGRTMAX, -1}}) {
    if (s.rfind(prefix, 0) != 0) continue;
    std::string_view rest = s.substr(prefix.size());
    if (rest.empty()) return base;
    auto n = small_number(rest.substr(1));
    if (rest[0] == (sign > 0 ? '+' : '-') && n && *n <= SIGRTMAX - SIGRTMIN) return base + sign * *n;
  }
  invalid("image config StopSignal: \"{}\" is not a signal", signal);
}

} // namespace berth::cri
