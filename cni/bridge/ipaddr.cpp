#include "cni/bridge/ipaddr.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cni {

int IpAddr::family() const { return v6 ? AF_INET6 : AF_INET; }

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  ::inet_ntop(family(), b.data(), buf, sizeof buf);
  return buf;
}

IpAddr IpAddr::next() const {
  IpAddr r = *this;
  for (int i = static_cast<int>(len()) - 1; i >= 0; --i)
    if (++r.b[i] != 0) break;
  return r;
}

IpAddr IpAddr::prev() const {
  IpAddr r = *this;
  for (int i = static_cast<int>(len()) - 1; i >= 0; --i)
    if (r.b[i]-- != 0) break;
  return r;
}

std::optional<IpAddr> IpAddr::parse(const std::string& s) {
  IpAddr a;
  if (::inet_pton(AF_INET, s.c_str(), a.b.data()) == 1) return a;
  a.v6 = true;
  if (::inet_pton(AF_INET6, s.c_str(), a.b.data()) == 1) {
    // An IPv4-mapped IPv6 address is IPv4, as in Go's net.ParseIP.To4().
    static constexpr uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped, mapped + 12, a.b.begin())) {
      IpAddr v4;
      std::copy(a.b.begin() + 12, a.b.end(), v4.b.begin());
      return v4;
    }
    return a;
  }
  return std::nullopt;
}

std::string IpNet::str() const { return addr.str() + "/" + std::to_string(prefix); }

IpNet IpNet::network() const {
  IpNet n = *this;
  for (size_t i = 0; i < addr.len(); ++i) {
    int bits = prefix - static_cast<int>(i) * 8;
    uint8_t mask = bits >= 8 ? 0xff : (bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits)));
    n.addr.b[i] &= mask;
  }
  return n;
}

IpAddr IpNet::last() const {
  IpAddr a = network().addr;
  for (size_t i = 0; i < addr.len(); ++i) {
    int bits = prefix - static_cast<int>(i) * 8;
    uint8_t mask = bits >= 8 ? 0xff : (bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits)));
    a.b[i] |= static_cast<uint8_t>(~mask);
  }
  return a;
}

bool IpNet::contains(const IpAddr& a) const {
  if (a.v6 != addr.v6) return false;
  IpNet x{a, prefix};
  return x.network().addr == network().addr;
}

std::optional<IpNet> IpNet::parse(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto a = IpAddr::parse(s.substr(0, slash));
  auto p = parse_uint(s.substr(slash + 1));
  if (!a || !p || *p > a->len() * 8) return std::nullopt;
  return IpNet{*a, static_cast<int>(*p)};
}

IpAddr must_parse_ip(const std::string& s, const std::string& field) {
  auto a = IpAddr::parse(s);
  if (!a) fail("{}: invalid IP address \"{}\"", field, s);
  return *a;
}

IpNet must_parse_cidr(const std::string& s, const std::string& field) {
  auto n = IpNet::parse(s);
  if (!n) fail("{}: invalid CIDR \"{}\" (expected e.g. 10.1.0.0/24)", field, s);
  return *n;
}

} // namespace berth::cni
