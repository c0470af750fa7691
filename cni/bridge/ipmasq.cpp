#include "cni/bridge/ipmasq.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>

#include <fmt/ranges.h>

#include "cni/lib/exec.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cni {

namespace {

constexpr std::string_view kNftTable = "cni_plugins_masquerade";
constexpr std::string_view kNftChain = "masq_checks";

std::string find_tool(const char* name) {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"}) {
    std::string p = path_join(dir, name);
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

using ToolResult = CommandResult;

ToolResult spawn_tool(const std::string& path, const std::vector<std::string>& args, std::string_view input) {
  RunOptions opts;
  opts.input = input;
  opts.timeout = std::chrono::seconds(30);
  ToolResult r = run_command(path, args, opts);
  if (r.timed_out) fail("{}: timed out", path);
  return r;
}

std::string iptables_comment(const MasqTarget& t) {
  return fmt::format("name: \"{}\" id: \"{}\"", t.network, t.container_id);
}

std::string strip_quotes(std::string s) {
  std::erase(s, '"');
  return s;
}

std::string hash_for_network(const std::string& network) { return sha512_hex(network).substr(0, 16); }
std::string hash_for_instance(const MasqTarget& t) {
  return hash_for_network(t.network) + "-" + sha512_hex(t.ifname + ":" + t.container_id).substr(0, 16);
}
std::string nft_comment(const MasqTarget& t) {
  std::string c = fmt::format("{}, net: {}, if: {}, id: {}", hash_for_instance(t), strip_quotes(t.network),
                              strip_quotes(t.ifname), strip_quotes(t.container_id));
  if (c.size() > 128) c.resize(128); // knftables.CommentLengthMax
  return c;
}

void iptables_setup(const std::vector<IpNet>& ips, const MasqTarget& t) {
  std::string chain = masq_chain_name(t.network, t.container_id);
  std::string comment = iptables_comment(t);
  for (const auto& ip : ips) {
    std::string tool = find_tool(ip.addr.v6 ? "ip6tables" : "iptables");
    if (tool.empty()) fail("failed to locate {}", ip.addr.v6 ? "ip6tables" : "iptables");
    auto run = [&](std::vector<std::string> args, bool tolerate) {
      args.insert(args.begin(), {"-w", "5", "-t", "nat"});
      ToolResult r = spawn_tool(tool, args, {});
      if (r.status != 0 && !tolerate) fail("{} {}: {}", tool, fmt::join(args, " "), trim(r.err));
      return r.status == 0;
    };
    run({"-N", chain}, true); // exists already: fine
    std::string multicast = ip.addr.v6 ? "ff00::/8" : "224.0.0.0/4";
    std::vector<std::vector<std::string>> rules = {
        {chain, "-d", ip.network().str(), "-j", "ACCEPT", "-m", "comment", "--comment", comment},
        {chain, "!", "-d", multicast, "-j", "MASQUERADE", "-m", "comment", "--comment", comment},
        {"POSTROUTING", "-s", ip.addr.str(), "-j", chain, "-m", "comment", "--comment", comment}};
    for (auto& rule : rules) {
      std::vector<std::string> check = rule, append = rule;
      check.insert(check.begin(), "-C");
      append.insert(append.begin(), "-A");
      if (!run(check, true)) run(append, false); // AppendUnique
    }
  }
}

void iptables_teardown(const std::vector<IpNet>& ips, const MasqTarget& t) {
  std::string chain = masq_chain_name(t.network, t.container_id);
  std::string comment = iptables_comment(t);
  for (bool v6 : {false, true}) {
    std::string tool = find_tool(v6 ? "ip6tables" : "iptables");
    if (tool.empty()) continue;
    bool any = false;
    for (const auto& ip : ips) {
      if (ip.addr.v6 != v6) continue;
      any = true;
      for (const std::string& src : {ip.addr.str(), ip.str()})
        spawn_tool(tool, {"-w", "5", "-t", "nat", "-D", "POSTROUTING", "-s", src, "-j", chain, "-m", "comment",
                          "--comment", comment}, {});
    }
    if (!any) continue;
    spawn_tool(tool, {"-w", "5", "-t", "nat", "-F", chain}, {});
    ToolResult r = spawn_tool(tool, {"-w", "5", "-t", "nat", "-X", chain}, {});
    if (r.status != 0 && r.err.find("No chain") == std::string::npos && r.err.find("does not exist") == std::string::npos)
      fail("{} -t nat -X {}: {}", tool, chain, trim(r.err));
  }
}

// Handles of rules in masq_checks whose comment starts with prefix (comment → handle).
std::vector<std::pair<std::string, uint64_t>> nft_rules(const std::string& nft, const std::string& prefix) {
  ToolResult r = spawn_tool(nft, {"-j", "list", "chain", "inet", std::string(kNftTable), std::string(kNftChain)}, {});
  std::vector<std::pair<std::string, uint64_t>> out;
  if (r.status != 0) return out; // no table/chain: nothing to find
  json j = json::parse(r.out, nullptr, false);
  if (j.is_discarded()) fail("{}: unparsable JSON listing", nft);
  for (const auto& item : j.value("nftables", json::array())) {
    auto rule = item.find("rule");
    if (rule == item.end()) continue;
    std::string c = rule->value("comment", "");
    if (starts_with(c, prefix)) out.emplace_back(c, rule->value("handle", uint64_t{0}));
  }
  return out;
}

void nft_run(const std::string& nft, const std::string& script) {
  ToolResult r = spawn_tool(nft, {"-f", "-"}, script);
  if (r.status != 0) fail("nft: {} (script: {})", trim(r.err), script);
}

void nft_setup(const std::vector<IpNet>& ips, const MasqTarget& t) {
  std::string nft = find_tool("nft");
  if (nft.empty()) fail("failed to locate nft");
  auto stale = nft_rules(nft, hash_for_instance(t));
  std::string tbl = fmt::format("inet {}", kNftTable);
  std::string s;
  s += fmt::format("add table {} {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }}\n", tbl);
  s += fmt::format("add chain {} {} {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }}\n", tbl, kNftChain);
  s += fmt::format("add chain {} postrouting {{ type nat hook postrouting priority 100 ; }}\n", tbl);
  s += fmt::format("flush chain {} postrouting\n", tbl);
  s += fmt::format("add rule {} postrouting ip daddr == 224.0.0.0/4 return\n", tbl);
  s += fmt::format("add rule {} postrouting ip6 daddr == ff00::/8 return\n", tbl);
  s += fmt::format("add rule {} postrouting goto {}\n", tbl, kNftChain);
  for (const auto& [c, h] : stale) s += fmt::format("delete rule {} {} handle {}\n", tbl, kNftChain, h);
  for (const auto& ip : ips) {
    const char* fam = ip.addr.v6 ? "ip6" : "ip";
    s += fmt::format("add rule {} {} {} saddr == {} {} daddr != {} masquerade comment \"{}\"\n", tbl, kNftChain, fam,
                     ip.addr.str(), fam, ip.network().str(), nft_comment(t));
  }
  nft_run(nft, s);
}

void nft_delete(const std::string& nft, const std::vector<std::pair<std::string, uint64_t>>& rules) {
  if (rules.empty()) return;
  std::string s;
  for (const auto& [c, h] : rules) s += fmt::format("delete rule inet {} {} handle {}\n", kNftTable, kNftChain, h);
  nft_run(nft, s);
}

} // namespace

std::string sha512_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha512(), nullptr) != 1) fail("sha512: digest failed");
  std::string out;
  for (unsigned i = 0; i < len; i++) out += fmt::format("{:02x}", md[i]);
  return out;
}

std::string masq_chain_name(const std::string& network, const std::string& container_id) {
  return ("CNI-" + sha512_hex(network + container_id)).substr(0, 28);
}

void setup_ipmasq(const std::string& backend, const std::vector<IpNet>& ips, const MasqTarget& t) {
  std::string b = backend;
  if (b.empty()) b = !find_tool("iptables").empty() || find_tool("nft").empty() ? "iptables" : "nftables";
  if (b == "iptables") return with_context("ipMasq (iptables)", [&] { iptables_setup(ips, t); });
  if (b == "nftables") return with_context("ipMasq (nftables)", [&] { nft_setup(ips, t); });
  fail("unknown ipmasq backend \"{}\"", b);
}

void teardown_ipmasq(const std::vector<IpNet>& ips, const MasqTarget& t) {
  if (!find_tool("iptables").empty()) with_context("ipMasq teardown (iptables)", [&] { iptables_teardown(ips, t); });
  if (std::string nft = find_tool("nft"); !nft.empty())
    with_context("ipMasq teardown (nftables)", [&] { nft_delete(nft, nft_rules(nft, hash_for_instance(t))); });
}

void gc_ipmasq(const std::string& network, const std::vector<std::pair<std::string, std::string>>& valid) {
  std::string nft = find_tool("nft");
  if (nft.empty()) return;
  std::vector<std::pair<std::string, uint64_t>> stale;
  for (const auto& rule : nft_rules(nft, hash_for_network(network))) {
    bool keep = false;
    for (const auto& [cid, ifname] : valid) keep = keep || rule.first == nft_comment({network, ifname, cid});
    if (!keep) stale.push_back(rule);
  }
  with_context("ipMasq gc (nftables)", [&] { nft_delete(nft, stale); });
}

} // namespace berth::cni
