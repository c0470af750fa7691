#include "cni/bridge/conf.hpp"

#include <chrono>
#include <cctype>
#include <cstdlib>

#include "cni/lib/config.hpp"
#include "cni/lib/exec.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::cni {

namespace {

std::string env_or_empty(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

bool uses_in_process_ipam(const BridgeConf& c) { return c.ipam_type == "host-local"; }

json run_ipam(const BridgeConf& c, const Invocation& inv, const std::string& command) {
  std::string path = with_context("IPAM", [&] { return find_plugin(c.ipam_type, inv.path); });
  PluginInvocation pi{command, inv.container_id, inv.netns, inv.ifname, inv.args, inv.path};
  std::string out = run_plugin(path, pi, c.raw_bytes, std::chrono::minutes(2), true);
  if (command != "ADD") return nullptr;
  json r = json::parse(out, nullptr, false);
  if (r.is_discarded() || !r.is_object()) fail("IPAM plugin {} printed no result object", c.ipam_type);
  return r;
}

// aa:bb:cc:dd:ee:ff, unicast (the kernel refuses a multicast MAC on a veth).
void validate_mac(const std::string& mac, const std::string& field) {
  bool ok = mac.size() == 17;
  for (size_t i = 0; ok && i < mac.size(); ++i)
    ok = i % 3 == 2 ? mac[i] == ':' : std::isxdigit(static_cast<unsigned char>(mac[i])) != 0;
  if (!ok) fail("{}: invalid MAC address \"{}\"", field, mac);
  if (std::stoi(mac.substr(0, 2), nullptr, 16) & 1) fail("{}: \"{}\" is a multicast MAC address", field, mac);
}

} // namespace

Invocation read_invocation() {
  Invocation inv;
  inv.command = env_or_empty("CNI_COMMAND");
  if (inv.command.empty()) throw CniFailure(kInvalidEnv, "required env variable CNI_COMMAND missing");
  inv.container_id = env_or_empty("CNI_CONTAINERID");
  inv.netns = env_or_empty("CNI_NETNS");
  inv.ifname = env_or_empty("CNI_IFNAME");
  inv.cni_args = env_or_empty("CNI_ARGS");
  inv.path = split(env_or_empty("CNI_PATH"), ':');
  for (const auto& kv : split(inv.cni_args, ';')) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) throw CniFailure(kInvalidEnv, fmt::format("CNI_ARGS: invalid pair \"{}\"", kv));
    inv.args.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  auto need = [&](const std::string& v, const char* name) {
    if (v.empty()) throw CniFailure(kInvalidEnv, fmt::format("required env variable {} missing", name));
  };
  if (inv.command == "ADD" || inv.command == "DEL" || inv.command == "CHECK") {
    need(inv.container_id, "CNI_CONTAINERID");
    need(inv.ifname, "CNI_IFNAME");
    if (inv.command != "DEL") need(inv.netns, "CNI_NETNS");
    // As the reference's skel: bad values are CNI error 4 naming the variable.
    auto check = [](const char* var, auto&& validate) {
      try {
        validate();
      } catch (const Error& e) {
        throw CniFailure(kInvalidEnv, fmt::format("{}: {}", var, e.what()));
      }
    };
    check("CNI_CONTAINERID", [&] { validate_container_id(inv.container_id); });
    check("CNI_IFNAME", [&] { validate_interface_name(inv.ifname); });
  }
  return inv;
}

BridgeConf parse_bridge_conf(const std::string& stdin_data, const Invocation& inv) {
  BridgeConf c;
  c.raw = json::parse(stdin_data, nullptr, false);
  if (c.raw.is_discarded() || !c.raw.is_object())
    throw CniFailure(kDecodeFailure, "failed to load netconf: stdin is not a JSON object");
  c.raw_bytes = stdin_data;
  try {
    JsonView v(c.raw, "");
    c.name = v.opt_string("name").value_or("");
    // host-local keeps its store under dataDir/<name>: never the dataDir itself or outside it.
    with_context("name", [&] { validate_network_name(c.name); });
    c.cni_version = v.opt_string("cniVersion").value_or("0.1.0");
    if (auto b = v.opt_string("bridge"); b && !b->empty()) c.bridge = *b;
    if (c.bridge.size() > 15) v["bridge"].bad(fmt::format("\"{}\" is longer than 15 characters", c.bridge));
    c.is_default_gateway = v.opt_bool("isDefaultGateway").value_or(false);
    c.is_gateway = v.opt_bool("isGateway").value_or(false) || c.is_default_gateway;
    c.force_address = v.opt_bool("forceAddress").value_or(false);
    c.ip_masq = v.opt_bool("ipMasq").value_or(false);
    c.ipmasq_backend = v.opt_string("ipMasqBackend").value_or("");
    c.hairpin = v.opt_bool("hairpinMode").value_or(false);
    c.promisc = v.opt_bool("promiscMode").value_or(false);
    c.enable_dad = v.opt_bool("enabledad").value_or(false);
    if (auto m = v.opt_int("mtu")) {
      if (*m < 0 || *m > 65535) v["mtu"].bad("out of range");
      c.mtu = static_cast<unsigned>(*m);
    }
    if (v["vlan"].present() && v["vlan"].as_int() != 0)
      throw CniFailure(kUnsupportedField, "vlan: berth-bridge does not support VLANs (use the reference bridge plugin)");
    for (const char* k : {"vlanTrunk"})
      if (v[k].present()) throw CniFailure(kUnsupportedField, fmt::format("{}: not supported by berth-bridge", k));
    for (const char* k : {"macspoofchk", "portIsolation", "disableContainerInterface"})
      if (v.opt_bool(k).value_or(false))
        throw CniFailure(kUnsupportedField, fmt::format("{}: not supported by berth-bridge", k));
    if (v["ipam"].present()) {
      v["ipam"].expect_object();
      c.ipam = c.raw["ipam"];
      c.ipam_type = v["ipam"].opt_string("type").value_or("");
    }
    if (v["dns"].present()) c.dns = c.raw["dns"];
    if (v["prevResult"].present()) c.prev_result = c.raw["prevResult"];
    // MAC precedence as the reference: runtimeConfig, then args.cni, then CNI_ARGS.
    // Requested IPs are the union of the three (host-local's IPArgs).
    auto rc = v["runtimeConfig"];
    auto args_cni = v["args"]["cni"];
    for (const JsonView& src : {rc, args_cni}) {
      if (auto mac = src.opt_string("mac"); mac && c.mac.empty()) validate_mac(c.mac = *mac, src["mac"].path());
      src["ips"].each([&](const JsonView& ip) {
        std::string s = ip.as_string();
        auto slash = s.find('/');
        c.requested_ips.push_back(must_parse_ip(s.substr(0, slash), ip.path()));
      });
    }
    v["cni.dev/valid-attachments"].each([&](const JsonView& a) {
      c.valid_attachments.emplace_back(a["containerID"].as_string(), a["ifname"].as_string());
    });
    for (const auto& [k, val] : inv.args) {
      if (k == "MAC") {
        validate_mac(val, "CNI_ARGS MAC");
        if (c.mac.empty()) c.mac = val;
      }
      if (k == "IP")
        for (const auto& ip : split(val, ','))
          c.requested_ips.push_back(must_parse_ip(ip, "CNI_ARGS IP"));
    }
  } catch (const CniFailure&) {
    throw;
  } catch (const Error& e) {
    throw CniFailure(kInvalidConfig, fmt::format("invalid network configuration: {}", e.what()));
  }
  if (c.hairpin && c.promisc) throw CniFailure(kInvalidConfig, "cannot set hairpin mode and promiscuous mode at the same time");
  return c;
}

json ipam_add(const BridgeConf& c, const Invocation& inv) {
  if (!uses_in_process_ipam(c)) return run_ipam(c, inv, "ADD");
  auto cfg = parse_host_local(c.ipam, c.name);
  return host_local_add(cfg, inv.container_id, inv.ifname, c.requested_ips, "1.0.0");
}

void ipam_del(const BridgeConf& c, const Invocation& inv) {
  if (!uses_in_process_ipam(c)) return (void)run_ipam(c, inv, "DEL");
  host_local_del(parse_host_local(c.ipam, c.name), inv.container_id, inv.ifname);
}

void ipam_check(const BridgeConf& c, const Invocation& inv) {
  if (!uses_in_process_ipam(c)) return (void)run_ipam(c, inv, "CHECK");
  host_local_check(parse_host_local(c.ipam, c.name), inv.container_id, inv.ifname);
}

void ipam_gc(const BridgeConf& c, const Invocation& inv) {
  if (!uses_in_process_ipam(c)) {
    if (version_at_least(c.cni_version, "1.1.0")) run_ipam(c, inv, "GC");
    return;
  }
  host_local_gc(parse_host_local(c.ipam, c.name), c.valid_attachments);
}

void ipam_status(const BridgeConf& c, const Invocation& inv) {
  if (!uses_in_process_ipam(c)) {
    if (version_at_least(c.cni_version, "1.1.0")) run_ipam(c, inv, "STATUS");
    return;
  }
  auto cfg = parse_host_local(c.ipam, c.name);
  try {
    HostLocalStore store(cfg.data_dir, cfg.network);
  } catch (const Error& e) {
    throw CniFailure(kNotAvailable, fmt::format("host-local store unavailable: {}", e.what()));
  }
}

} // namespace berth::cni
