// berth-cni: a thin command line over the CNI client library, in the manner of
// cnitool (berth-cni(8)).
#include <getopt.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/ranges.h>

#include "cni/lib/client.hpp"
#include "cni/lib/netns.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/version.hpp"

using namespace berth;
using namespace berth::cni;

namespace {

constexpr const char* kUsage = R"(usage: berth-cni [options] COMMAND ARGS
commands:
  add NETWORK NETNS        attach (prints the result)
  del NETWORK NETNS        detach (NETNS may be gone)
  check NETWORK NETNS      verify an attachment against the cached result
  status NETWORK           ask each plugin whether it can serve ADD
  validate NETWORK         every plugin exists and supports the network's cniVersion
  gc NETWORK [CID:IFNAME...]  remove every attachment not listed
  version PLUGIN           the plugin's supported versions
  list                     networks in the configuration directory
  netns-add DIR NAME       create a pinned network namespace (prints its path)
  netns-del PATH           remove one
options (environment in brackets):
  --conf-dir DIR   network configurations [NETCONFPATH] (/etc/cni/net.d)
  --bin-dir DIRS   plugin directories, colon-separated [CNI_PATH] (/opt/cni/bin:/usr/local/lib/cni:/usr/lib/cni)
  --cache-dir DIR  attachment cache [CNI_CACHE_DIR] (/var/lib/cni)
  --cid ID         container ID [CNI_CONTAINERID] (default: from the netns name)
  --ifname NAME    interface in the pod [CNI_IFNAME] (eth0)
  --args K=V;...   CNI_ARGS [CNI_ARGS]
  --cap-args JSON  capability arguments, e.g. {"portMappings":[...]} [CAP_ARGS]
  --timeout SECS   per plugin run (60)
  --version, --help
)";

std::string env_or(const char* k, std::string def) {
  const char* v = std::getenv(k);
  return v && *v ? v : def;
}

std::string default_cid(const std::string& netns) {
  std::string base = netns.substr(netns.rfind('/') + 1), out = "berth-cni-";
  for (char c : base) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::string conf_dir = env_or("NETCONFPATH", "/etc/cni/net.d");
  ClientOptions opts;
  if (const char* p = std::getenv("CNI_PATH"); p && *p) opts.bin_dirs = split(p, ':');
  opts.cache_dir = env_or("CNI_CACHE_DIR", std::string(kDefaultCacheDir));
  std::string cid = env_or("CNI_CONTAINERID", ""), ifname = env_or("CNI_IFNAME", "eth0");
  std::string args = env_or("CNI_ARGS", ""), cap_args = env_or("CAP_ARGS", "");
  static const option longopts[] = {{"conf-dir", required_argument, nullptr, 'c'}, {"bin-dir", required_argument, nullptr, 'b'},
                                    {"cache-dir", required_argument, nullptr, 'C'}, {"cid", required_argument, nullptr, 'i'},
                                    {"ifname", required_argument, nullptr, 'n'},   {"args", required_argument, nullptr, 'a'},
                                    {"cap-args", required_argument, nullptr, 'p'}, {"timeout", required_argument, nullptr, 't'},
                                    {"help", no_argument, nullptr, 'h'},           {"version", no_argument, nullptr, 'V'},
                                    {nullptr, 0, nullptr, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "+h", longopts, nullptr)) != -1) {
    switch (o) {
    case 'c': conf_dir = optarg; break;
    case 'b': opts.bin_dirs = split(optarg, ':'); break;
    case 'C': opts.cache_dir = optarg; break;
    case 'i': cid = optarg; break;
    case 'n': ifname = optarg; break;
    case 'a': args = optarg; break;
    case 'p': cap_args = optarg; break;
    case 't': {
      auto s = parse_uint(optarg);
      if (!s || *s == 0) {
        fmt::print(stderr, "berth-cni: --timeout: expected a positive number of seconds\n");
        return 2;
      }
      opts.timeout = std::chrono::seconds(*s);
      break;
    }
    case 'h': fmt::print("{}", kUsage); return 0;
    case 'V': fmt::print("{}", version_text("berth-cni")); return 0;
    default: fmt::print(stderr, "{}", kUsage); return 2;
    }
  }
  std::vector<std::string> rest(argv + optind, argv + argc);
  auto need = [&](size_t n) {
    if (rest.size() < n) {
      fmt::print(stderr, "{}", kUsage);
      std::exit(2);
    }
  };
  need(1);
  const std::string cmd = rest[0];
  try {
    if (cmd == "netns-add") {
      need(3);
      fmt::print("{}\n", create_netns(rest[1], rest[2]));
      return 0;
    }
    if (cmd == "netns-del") {
      need(2);
      remove_netns(rest[1]);
      return 0;
    }
    Client client(opts);
    if (cmd == "version") {
      need(2);
      VersionInfo v = client.plugin_version(rest[1]);
      fmt::print("{}\n", json{{"cniVersion", v.cni_version}, {"supportedVersions", v.supported_versions}}.dump());
      return 0;
    }
    ConfigDir dir(conf_dir);
    if (cmd == "list") {
      for (const auto& n : dir.networks())
        fmt::print("{} {} {} [{}]\n", n.name, n.cni_version, n.origin,
                   fmt::join([&] { std::vector<std::string> t; for (auto& p : n.plugins) t.push_back(p.type); return t; }(), " "));
      for (const auto& e : dir.errors()) fmt::print(stderr, "berth-cni: skipped {}\n", e);
      return 0;
    }
    need(2);
    const NetworkConfigList& net = dir.network(rest[1]);
    if (cmd == "status") {
      client.status(net);
      return 0;
    }
    if (cmd == "validate") {
      client.validate(net);
      return 0;
    }
    if (cmd == "gc") {
      std::vector<GCAttachment> valid;
      for (size_t i = 2; i < rest.size(); ++i) {
        auto colon = rest[i].find(':');
        if (colon == std::string::npos) fail("gc: \"{}\" is not CID:IFNAME", rest[i]);
        valid.push_back({rest[i].substr(0, colon), rest[i].substr(colon + 1)});
      }
      client.gc(net, valid);
      return 0;
    }
    need(3);
    RuntimeConf rt;
    rt.netns = rest[2];
    rt.container_id = cid.empty() ? default_cid(rt.netns) : cid;
    rt.ifname = ifname;
    for (const auto& kv : split(args, ';')) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) fail("--args: \"{}\" is not KEY=VALUE", kv);
      rt.args.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (!cap_args.empty()) {
      rt.capability_args = json::parse(cap_args, nullptr, false);
      if (rt.capability_args.is_discarded() || !rt.capability_args.is_object())
        fail("--cap-args: expected a JSON object");
    }
    if (cmd == "add") {
      fmt::print("{}\n", client.add(net, rt).dump(2));
    } else if (cmd == "del") {
      client.del(net, rt);
    } else if (cmd == "check") {
      client.check(net, rt);
    } else {
      fmt::print(stderr, "berth-cni: unknown command \"{}\"\n{}", cmd, kUsage);
      return 2;
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "berth-cni: {}\n", e.what());
    return 1;
  }
}
