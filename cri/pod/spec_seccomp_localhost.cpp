// Localhost seccomp profiles: a file on the host in Docker's profile format (which
// includes the OCI linux.seccomp format), turned into the OCI object berth takes.
// Docker's extras are applied here, as moby's setupSeccomp does: "archMap" picks the
// architectures of this machine, "name" is an old spelling of "names", and
// "includes"/"excludes" keep or drop a rule by architecture, capability and kernel.
// The file is untrusted input: size, depth and every type are checked, and errors name
// the file and the field.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/fd.hpp"
#include "cri/pod/seccomp_profile.hpp"
#include "cri/pod/spec_internal.hpp"

namespace berth::cri {
namespace {

using spec::invalid;

constexpr size_t kMaxProfileBytes = 1 << 20;
constexpr int kMaxProfileDepth = 16;  // the format needs 5

#if defined(__x86_64__)
constexpr std::string_view kNativeArch = "SCMP_ARCH_X86_64", kGoArch = "amd64";
#elif defined(__aarch64__)
constexpr std::string_view kNativeArch = "SCMP_ARCH_AARCH64", kGoArch = "arm64";
#elif defined(__s390x__)
constexpr std::string_view kNativeArch = "SCMP_ARCH_S390X", kGoArch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
constexpr std::string_view kNativeArch = "SCMP_ARCH_RISCV64", kGoArch = "riscv64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr std::string_view kNativeArch = "SCMP_ARCH_PPC64LE", kGoArch = "ppc64le";
#elif defined(__i386__)
constexpr std::string_view kNativeArch = "SCMP_ARCH_X86", kGoArch = "386";
#else
constexpr std::string_view kNativeArch = "", kGoArch = "";
#endif

const std::set<std::string_view> kActions = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                             "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",
                                             "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"};
const std::set<std::string_view> kOperators = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                                               "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"};

std::string read_profile(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at the path must not hang the daemon.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) fail_errno("open");
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) fail_errno("stat");
  if (!S_ISREG(st.st_mode)) invalid("not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxProfileBytes)
    invalid("{} bytes, at most {} are accepted", st.st_size, kMaxProfileBytes);
  std::string text(kMaxProfileBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxProfileBytes) invalid("grew beyond {} bytes while read", kMaxProfileBytes);
  text.resize(got);
  return text;
}

std::string checked_string(const JsonView& v, size_t max = 256) {
  std::string s = v.as_string();
  if (s.size() > max || s.find('\0') != std::string::npos) v.bad("too long, or contains a NUL byte");
  return s;
}

std::string action(const JsonView& v) {
  if (!v.present()) v.bad("required");
  std::string a = checked_string(v);
  if (!kActions.count(a)) v.bad(fmt::format("unknown action \"{}\"", a));
  return a;
}

std::string syscall_name(const JsonView& v) {
  std::string name = checked_string(v, 64);
  if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
    v.bad(fmt::format("\"{}\" is not a syscall name", name));
  return name;
}

// "4.8" <= the running kernel?
bool kernel_at_least(const JsonView& v) {
  std::string want = checked_string(v, 32);
  unsigned want_major = 0, want_minor = 0, major = 0, minor = 0;
  char extra = 0;
  if (std::sscanf(want.c_str(), "%u.%u%c", &want_major, &want_minor, &extra) != 2)
    v.bad(fmt::format("\"{}\" is not a kernel version such as 4.8", want));
  struct utsname u;
  if (::uname(&u) < 0 || std::sscanf(u.release, "%u.%u", &major, &minor) != 2) return false;
  return major > want_major || (major == want_major && minor >= want_minor);
}

std::vector<std::string> string_set(const JsonView& list) {
  std::vector<std::string> out;
  list.each([&](const JsonView& v) { out.push_back(checked_string(v)); });
  return out;
}

// Docker's includes/excludes. A rule is kept when every include matches (its arches
// list holds this machine's, all its caps are held, the kernel is at least minKernel)
// and no exclude does.
bool rule_applies(const JsonView& rule, const std::vector<std::string>& caps) {
  auto contains = [](const std::vector<std::string>& list, std::string_view s) {
    return std::find(list.begin(), list.end(), s) != list.end();
  };
  JsonView inc = rule["includes"], exc = rule["excludes"];
  if (inc.present()) {
    inc.expect_object();
    auto arches = string_set(inc["arches"]);
    if (!arches.empty() && !contains(arches, kGoArch)) return false;
    for (const auto& cap : string_set(inc["caps"]))
      if (!contains(caps, cap)) return false;
    if (inc["minKernel"].present() && !kernel_at_least(inc["minKernel"])) return false;
  }
  if (exc.present()) {
    exc.expect_object();
    if (contains(string_set(exc["arches"]), kGoArch)) return false;
    for (const auto& cap : string_set(exc["caps"]))
      if (contains(caps, cap)) return false;
    if (exc["minKernel"].present() && kernel_at_least(exc["minKernel"])) return false;
  }
  return true;
}

json syscall_rule(const JsonView& rule) {
  rule.expect_object();
  json out;
  JsonView names = rule["names"], name = rule["name"];
  if (names.present() && name.present()) rule.bad("has both \"name\" and \"names\"; use one");
  if (!names.present() && !name.present()) names.bad("required");
  if (name.present()) {
    out["names"] = {syscall_name(name)};
  } else {
    if (!names.raw().is_array()) names.bad(fmt::format("expected an array, got {}", json_type_name(names.raw())));
    if (names.size() == 0) names.bad("must name at least one syscall");
    names.each([&](const JsonView& n) { out["names"].push_back(syscall_name(n)); });
  }
  out["action"] = action(rule["action"]);
  if (auto e = rule["errnoRet"]; e.present()) {
    uint64_t value = e.as_uint();
    if (value > 0xffff) e.bad(fmt::format("{} is out of range (0-65535)", value));
    out["errnoRet"] = value;
  }
  rule["args"].each([&](const JsonView& a) {
    a.expect_object();
    json arg;
    auto index = a["index"];
    if (!index.present()) index.bad("required");
    if (index.as_uint() > 5) index.bad(fmt::format("{} is out of range (0-5)", index.as_uint()));
    arg["index"] = index.as_uint();
    if (!a["value"].present()) a["value"].bad("required");
    arg["value"] = a["value"].as_uint();
    if (a["valueTwo"].present()) arg["valueTwo"] = a["valueTwo"].as_uint();
    std::string op = a["op"].present() ? checked_string(a["op"]) : "";
    if (!kOperators.count(op)) a["op"].bad(fmt::format("unknown operator \"{}\"", op));
    arg["op"] = op;
    out["args"].push_back(std::move(arg));
  });
  return out;
}

std::vector<std::string> architectures(const JsonView& root) {
  JsonView archs = root["architectures"], map = root["archMap"];
  if (archs.present() && map.present() && archs.size() && map.size())
    root.bad("has both \"architectures\" and \"archMap\"; use one");
  std::vector<std::string> out;
  auto check = [](const JsonView& v) {
    std::string a = checked_string(v, 64);
    if (a.rfind("SCMP_ARCH_", 0) != 0) v.bad(fmt::format("\"{}\" is not an architecture (SCMP_ARCH_*)", a));
    return a;
  };
  archs.each([&](const JsonView& v) { out.push_back(check(v)); });
  // archMap: the entry of this machine's architecture, with its sub-architectures.
  map.each([&](const JsonView& entry) {
    entry.expect_object();
    std::string arch = check(entry["architecture"]);
    std::vector<std::string> subs;
    entry["subArchitectures"].each([&](const JsonView& v) { subs.push_back(check(v)); });
    if (arch != kNativeArch) return;
    out.push_back(arch);
    out.insert(out.end(), subs.begin(), subs.end());
  });
  return out;
}

json convert(const json& doc, const std::vector<std::string>& caps) {
  JsonView root(doc, "");
  root.expect_object();
  json out;
  out["defaultAction"] = action(root["defaultAction"]);
  if (auto e = root["defaultErrnoRet"]; e.present()) {
    if (e.as_uint() > 0xffff) e.bad(fmt::format("{} is out of range (0-65535)", e.as_uint()));
    out["defaultErrnoRet"] = e.as_uint();
  }
  if (auto archs = architectures(root); !archs.empty()) out["architectures"] = archs;
  if (auto flags = string_set(root["flags"]); !flags.empty()) out["flags"] = flags;
  for (const char* key : {"listenerPath", "listenerMetadata"})
    if (root[key].present()) out[key] = checked_string(root[key], 4096);
  out["syscalls"] = json::array();
  root["syscalls"].each([&](const JsonView& rule) {
    if (rule.raw().is_object() && !rule_applies(rule, caps)) return;
    out["syscalls"].push_back(syscall_rule(rule));
  });
  return out;
}

} // namespace

json load_seccomp_profile(const std::string& path, const std::vector<std::string>& capabilities) {
  std::string what = fmt::format("seccomp profile {}", path);
  std::string text;
  try {
    text = read_profile(path);
  } catch (Error& e) {
    throw e.wrap(what);
  }
  json doc = spec::parse_bounded_json(text, kMaxProfileBytes, kMaxProfileDepth, what);
  try {
    return convert(doc, capabilities);
  } catch (Error& e) {
    // JsonView's messages name the field; add the file, and make it the client's error.
    throw Error(EINVAL, fmt::format("{}: {}", what, e.message()));
  }
}

} // namespace berth::cri
