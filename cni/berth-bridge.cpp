// berth-bridge: a CNI plugin compatible with the reference bridge + host-local
// pair (docs/cni.md, berth-bridge(8)). Reads CNI_* and the configuration on stdin,
// prints a result or an error object on stdout.
#include <unistd.h>

#include <fmt/ranges.h>

#include "cni/bridge/commands.hpp"
#include "common/fs.hpp"
#include "common/version.hpp"

using namespace berth;
using namespace berth::cni;

namespace {

std::string read_stdin() {
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void print(const json& j) { write_all(1, j.dump() + "\n"); }

int report(const std::string& version, uint32_t code, const std::string& msg) {
  print(json{{"cniVersion", version}, {"code", code}, {"msg", msg}});
  return 1;
}

bool supported(const std::string& v) {
  const auto& vs = bridge_versions();
  return std::find(vs.begin(), vs.end(), v) != vs.end();
}

int run() {
  std::string version(kLatestVersion);
  try {
    Invocation inv = read_invocation();
    std::string in = read_stdin();
    if (inv.command == "VERSION") {
      print(json{{"cniVersion", kLatestVersion}, {"supportedVersions", bridge_versions()}});
      return 0;
    }
    BridgeConf c = parse_bridge_conf(in, inv);
    if (!supported(c.cni_version))
      return report(version, kIncompatibleVersion,
                    fmt::format("incompatible CNI versions; config is \"{}\", plugin supports [{}]", c.cni_version,
                                fmt::join(bridge_versions(), " ")));
    version = c.cni_version;
    if (inv.command == "ADD") {
      print(bridge_add(c, inv));
    } else if (inv.command == "DEL") {
      bridge_del(c, inv);
    } else if (inv.command == "CHECK") {
      if (!version_at_least(c.cni_version, "0.4.0"))
        return report(version, kIncompatibleVersion, fmt::format("config version \"{}\" does not allow CHECK", c.cni_version));
      bridge_check(c, inv);
    } else if (inv.command == "GC") {
      bridge_gc(c, inv);
    } else if (inv.command == "STATUS") {
      bridge_status(c, inv);
    } else {
      return report(version, kInvalidEnv, fmt::format("unknown CNI_COMMAND: {}", inv.command));
    }
    return 0;
  } catch (const CniFailure& e) {
    return report(version, e.code(), e.what());
  } catch (const PluginError& e) {
    // A delegated IPAM plugin's own error keeps its code.
    return report(version, e.cni_code(), e.what());
  } catch (const Error& e) {
    return report(version, kInternal, e.what());
  } catch (const std::exception& e) {
    return report(version, kInternal, e.what());
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc > 1 || (isatty(0) && !std::getenv("CNI_COMMAND"))) {
    fmt::print(argc > 1 ? stdout : stderr, "{}a CNI plugin, run by a CNI runtime with CNI_COMMAND set (CNI protocol versions: {})\n",
               version_text("berth-bridge"), fmt::join(bridge_versions(), ", "));
    std::string_view arg = argc > 1 ? argv[1] : "";
    return arg == "--version" || arg == "--help" ? 0 : 2;
  }
  return run();
}
