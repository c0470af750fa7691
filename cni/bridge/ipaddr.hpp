// IPv4/IPv6 addresses and prefixes as the plugin handles them: parsing and
// printing in the forms Go's net package uses in CNI results, arithmetic for
// the allocator.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace berth::cni {

struct IpAddr {
  bool v6 = false;
  std::array<uint8_t, 16> b{}; // IPv4 uses b[0..3]

  size_t len() const { return v6 ? 16 : 4; }
  int family() const; // AF_INET / AF_INET6
  std::string str() const;
  bool operator==(const IpAddr& o) const { return v6 == o.v6 && b == o.b; }
  bool operator<(const IpAddr& o) const { return v6 != o.v6 ? !v6 : b < o.b; }
  IpAddr next() const;
  IpAddr prev() const;
  static std::optional<IpAddr> parse(const std::string& s);
};

struct IpNet {
  IpAddr addr; // for a subnet, the network address; for an interface address, the host's
  int prefix = 0;

  std::string str() const; // "10.0.0.2/24"
  IpNet network() const;   // host bits cleared
  bool contains(const IpAddr& a) const;
  IpAddr last() const;     // all host bits set
  bool operator==(const IpNet& o) const { return addr == o.addr && prefix == o.prefix; }
  static std::optional<IpNet> parse(const std::string& s);
};

// Parse or fail with "<field>: invalid IP address "x"".
IpAddr must_parse_ip(const std::string& s, const std::string& field);
IpNet must_parse_cidr(const std::string& s, const std::string& field);

} // namespace berth::cni
