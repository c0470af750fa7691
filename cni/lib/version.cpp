#include "cni/lib/version.hpp"

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cni {

const std::vector<std::string>& supported_versions() {
  static const std::vector<std::string> v = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return v;
}

bool is_supported_version(std::string_view v) {
  for (const auto& s : supported_versions())
    if (s == v) return true;
  return false;
}

namespace {

std::vector<uint64_t> parse_version(std::string_view v) {
  auto parts = split(v, '.', false);
  if (parts.empty() || parts.size() > 3) fail("invalid version \"{}\": expected MAJOR.MINOR.PATCH", v);
  std::vector<uint64_t> out;
  for (const auto& p : parts) {
    auto n = parse_uint(p);
    if (!n) fail("invalid version \"{}\": \"{}\" is not a number", v, p);
    out.push_back(*n);
  }
  out.resize(3, 0);
  return out;
}

enum class Family { legacy, v04, v1 };

Family family_of(std::string_view v) {
  if (compare_versions(v, "0.3.0") < 0) return Family::legacy;
  if (compare_versions(v, "1.0.0") < 0) return Family::v04;
  return Family::v1;
}

bool is_ipv4_cidr(const std::string& cidr) { return cidr.find(':') == std::string::npos; }

// Legacy ip4/ip6 objects → ips[] + routes (types/040 convertFrom02x).
json legacy_to_current(const json& r) {
  json out = json::object();
  json ips = json::array();
  json routes = json::array();
  for (const char* fam : {"ip4", "ip6"}) {
    auto it = r.find(fam);
    if (it == r.end() || it->is_null()) continue;
    if (!it->is_object() || !it->contains("ip")) fail("result.{}: expected an object with \"ip\"", fam);
    json ip = {{"version", fam[2] == '4' ? "4" : "6"}, {"address", (*it)["ip"]}};
    if (it->contains("gateway")) ip["gateway"] = (*it)["gateway"];
    ips.push_back(std::move(ip));
    if (auto rt = it->find("routes"); rt != it->end() && rt->is_array())
      for (const auto& x : *rt) routes.push_back(x);
  }
  if (!ips.empty()) out["ips"] = std::move(ips);
  if (!routes.empty()) out["routes"] = std::move(routes);
  if (r.contains("dns")) out["dns"] = r["dns"];
  return out;
}

// ips[] → legacy ip4/ip6 (types/040 convertTo02x): one address per family at most.
json current_to_legacy(const json& r) {
  json out = json::object();
  if (auto ips = r.find("ips"); ips != r.end() && ips->is_array()) {
    for (const auto& ip : *ips) {
      std::string addr = ip.value("address", "");
      const char* fam = is_ipv4_cidr(addr) ? "ip4" : "ip6";
      if (out.contains(fam)) fail("cannot convert result to a 0.2.0 result: more than one {} address", fam);
      json o = {{"ip", addr}};
      if (ip.contains("gateway")) o["gateway"] = ip["gateway"];
      out[fam] = std::move(o);
    }
  }
  if (auto routes = r.find("routes"); routes != r.end() && routes->is_array()) {
    for (const auto& rt : *routes) {
      const char* fam = is_ipv4_cidr(rt.value("dst", "")) ? "ip4" : "ip6";
      if (!out.contains(fam)) continue; // 0.2.0 routes live inside their family's object
      out[fam]["routes"].push_back(rt);
    }
  }
  if (r.contains("dns")) out["dns"] = r["dns"];
  return out;
}

// The fields conversion reads, checked first so that a malformed plugin result
// gives an error naming the field rather than a JSON library exception.
void check_result_shape(const json& r) {
  auto objects_with_string = [&](const char* list, const char* key) {
    auto it = r.find(list);
    if (it == r.end() || it->is_null()) return;
    if (!it->is_array()) fail("result.{}: expected an array", list);
    for (size_t i = 0; i < it->size(); ++i) {
      const json& e = (*it)[i];
      if (!e.is_object()) fail("result.{}[{}]: expected an object", list, i);
      if (!e.contains(key) || !e[key].is_string()) fail("result.{}[{}].{}: expected a string", list, i, key);
    }
  };
  objects_with_string("ips", "address");
  objects_with_string("routes", "dst");
  for (const char* fam : {"ip4", "ip6"}) {
    auto it = r.find(fam);
    if (it == r.end() || it->is_null()) continue;
    if (!it->is_object() || !it->contains("ip") || !(*it)["ip"].is_string())
      fail("result.{}: expected an object with a string \"ip\"", fam);
  }
  if (auto v = r.find("cniVersion"); v != r.end() && !v->is_string()) fail("result.cniVersion: expected a string");
}

} // namespace

int compare_versions(std::string_view a, std::string_view b) {
  auto x = parse_version(a), y = parse_version(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

bool version_at_least(std::string_view v, std::string_view min) { return compare_versions(v, min) >= 0; }

json convert_result(const json& result, std::string_view to) {
  if (!result.is_object()) fail("result: expected an object, got {}", result.type_name());
  check_result_shape(result);
  std::string from = result.value("cniVersion", "0.1.0");
  if (!is_supported_version(from)) fail("result: unsupported cniVersion \"{}\"", from);
  if (!is_supported_version(to)) fail("cannot convert result to unsupported cniVersion \"{}\"", to);
  Family ff = family_of(from), tf = family_of(to);

  json out;
  if (ff == tf) {
    out = result;
  } else if (tf == Family::legacy) {
    out = current_to_legacy(result);
  } else {
    out = ff == Family::legacy ? legacy_to_current(result) : result;
    if (auto ips = out.find("ips"); ips != out.end() && ips->is_array()) {
      for (auto& ip : *ips) {
        if (tf == Family::v1) {
          ip.erase("version");
        } else if (!ip.contains("version")) {
          ip["version"] = is_ipv4_cidr(ip.value("address", "")) ? "4" : "6";
        }
      }
    }
  }
  out["cniVersion"] = std::string(to);
  return out;
}

} // namespace berth::cni
