// Quick deterministic fuzz of the configuration parsers (client conflist, the
// bridge plugin's stdin, host-local's ipam section): mutated inputs must give an
// Error (with a message) or parse; never a crash or another exception type.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "cni/bridge/conf.hpp"
#include "cni/bridge/host_local.hpp"
#include "cni/lib/config.hpp"
#include "cni/lib/version.hpp"

namespace {

using namespace berth;
using namespace berth::cni;

const char* kConflist = R"({"cniVersion":"1.1.0","name":"net1","disableCheck":false,"plugins":[
 {"type":"berth-bridge","bridge":"br0","isDefaultGateway":true,"ipMasq":true,"mtu":1500,"hairpinMode":false,
  "ipam":{"type":"host-local","dataDir":"/nonexistent/cni-fuzz","ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10",
  "rangeEnd":"10.1.0.20","gateway":"10.1.0.1"}],[{"subnet":"fd00::/64"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd00::1"}]},
  "capabilities":{"portMappings":true,"ips":true},"runtimeConfig":{"ips":["10.1.0.12/24"],"mac":"02:00:00:00:00:01"},
  "dns":{"nameservers":["10.1.0.1"]},"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]},
 {"type":"portmap","capabilities":{"portMappings":true}}]})";

// Values of other JSON types (and edge values) swapped in for a field.
const std::vector<json>& replacements() {
  static const std::vector<json> r = {nullptr, true, 0, -1, 70000, 1.5, "", "x", "10.1.0.0/33", "::/0",
                                      json::array(), json::array({1}), json::object(), json::object({{"a", 1}}),
                                      std::string(300, 'a'), "1.1.0", "0.1.0", "999.0.0"};
  return r;
}

// Every (nested) field path of j.
void paths(const json& j, std::vector<json::json_pointer>& out, json::json_pointer at = {}) {
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it) out.push_back(at / it.key()), paths(it.value(), out, at / it.key());
  if (j.is_array())
    for (size_t i = 0; i < j.size(); ++i) out.push_back(at / i), paths(j[i], out, at / i);
}

std::vector<std::string> mutants(size_t byte_flips) {
  std::vector<std::string> out;
  json base = json::parse(kConflist);
  std::vector<json::json_pointer> ps;
  paths(base, ps);
  for (const auto& p : ps) {
    json removed = base;
    removed.at(p.parent_pointer()).is_object() ? (void)removed.at(p.parent_pointer()).erase(p.back())
                                               : (void)removed.at(p.parent_pointer()).erase(std::stoul(p.back()));
    out.push_back(removed.dump());
    for (const auto& r : replacements()) {
      json m = base;
      m[p] = r;
      out.push_back(m.dump());
    }
  }
  std::mt19937 rng(7);
  std::string text = base.dump();
  for (size_t i = 0; i < byte_flips; ++i) {
    std::string m = text;
    for (int k = 0; k < 1 + int(rng() % 3); ++k) m[rng() % m.size()] = static_cast<char>(rng() % 128);
    out.push_back(m);
  }
  return out;
}

template <typename F>
void expect_error_or_success(const std::string& input, F&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    EXPECT_FALSE(std::string(e.what()).empty()) << input;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected " << typeid(e).name() << ": " << e.what() << "\n on: " << input;
  }
}

TEST(Fuzz, MutatedConfigsGiveErrorsNotCrashes) {
  auto inputs = mutants(400);
  ASSERT_GT(inputs.size(), 500u);
  Invocation inv{"ADD", "c1", "/proc/self/ns/net", "eth0", "", {}, {}};
  for (const auto& in : inputs) {
    expect_error_or_success(in, [&] { parse_conflist(in, "fuzz.conflist"); });
    json list = json::parse(in, nullptr, false);
    if (list.is_discarded() || !list.is_object() || !list.contains("plugins") || !list["plugins"].is_array() ||
        list["plugins"].empty())
      continue;
    json plugin = list["plugins"][0];
    if (!plugin.is_object()) continue;
    plugin["name"] = list.value("name", json("net1"));
    plugin["cniVersion"] = list.value("cniVersion", json("1.1.0"));
    std::string stdin_data = plugin.dump();
    expect_error_or_success(stdin_data, [&] {
      BridgeConf c = parse_bridge_conf(stdin_data, inv);
      if (c.ipam_type == "host-local") parse_host_local(c.ipam, c.name);
    });
  }
}

// A plugin's result is untrusted input too: conversion to every version must fail
// with an Error, never a JSON library exception or a crash.
TEST(Fuzz, MutatedResultsConvertOrGiveErrors) {
  json base = json::parse(R"({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/x"}],
    "ips":[{"interface":0,"address":"10.1.0.5/24","gateway":"10.1.0.1"},{"address":"fd00::5/64"}],
    "routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"::/0"}],"dns":{"nameservers":["10.1.0.1"]}})");
  std::vector<json::json_pointer> ps;
  paths(base, ps);
  size_t runs = 0;
  for (const auto& p : ps)
    for (const auto& r : replacements()) {
      json m = base;
      m[p] = r;
      for (const auto& to : supported_versions()) {
        ++runs;
        expect_error_or_success(m.dump(), [&] { convert_result(convert_result(m, to), "1.1.0"); });
      }
    }
  EXPECT_GT(runs, 1000u);
}

} // namespace
