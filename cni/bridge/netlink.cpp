#include "cni/bridge/netlink.hpp"

#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/random.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include <utility>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace berth::cni {

namespace {

template <typename T, void (*Free)(T*)>
struct Owned {
  T* p = nullptr;
  Owned() = default;
  explicit Owned(T* x) : p(x) {}
  ~Owned() {
    if (p) Free(p);
  }
  Owned(Owned&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  Owned& operator=(Owned&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
  T* get() const { return p; }
};
using LinkPtr = Owned<rtnl_link, rtnl_link_put>;
using AddrPtr = Owned<rtnl_addr, rtnl_addr_put>;
using RoutePtr = Owned<rtnl_route, rtnl_route_put>;
using NlAddrPtr = Owned<nl_addr, nl_addr_put>;
using CachePtr = Owned<nl_cache, nl_cache_free>;

[[noreturn]] void nl_fail(int err, const std::string& what) { fail("{}: {}", what, nl_geterror(err)); }

NlAddrPtr to_nl(const IpAddr& a, int prefix) {
  nl_addr* n = nl_addr_build(a.family(), a.b.data(), a.len());
  if (!n) fail("out of memory");
  nl_addr_set_prefixlen(n, prefix);
  return NlAddrPtr(n);
}

IpAddr from_nl(nl_addr* n) {
  IpAddr a;
  a.v6 = nl_addr_get_family(n) == AF_INET6;
  auto* bin = static_cast<const uint8_t*>(nl_addr_get_binary_addr(n));
  std::copy(bin, bin + std::min<size_t>(nl_addr_get_len(n), a.len()), a.b.begin());
  return a;
}

LinkInfo info_of(rtnl_link* l) {
  LinkInfo i;
  i.ifindex = rtnl_link_get_ifindex(l);
  i.name = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "";
  i.kind = rtnl_link_get_type(l) ? rtnl_link_get_type(l) : "";
  i.master = rtnl_link_get_master(l);
  i.peer_ifindex = rtnl_link_get_link(l);
  i.flags = rtnl_link_get_flags(l);
  i.mtu = rtnl_link_get_mtu(l);
  if (nl_addr* a = rtnl_link_get_addr(l); a && nl_addr_get_len(a) == 6)
    i.mac = format_mac(static_cast<const uint8_t*>(nl_addr_get_binary_addr(a)));
  return i;
}

NlAddrPtr parse_mac(const std::string& mac) {
  nl_addr* a = nullptr;
  if (nl_addr_parse(mac.c_str(), AF_LLC, &a) < 0 || nl_addr_get_len(a) != 6) {
    if (a) nl_addr_put(a);
    fail("invalid MAC address \"{}\"", mac);
  }
  return NlAddrPtr(a);
}

} // namespace

std::string format_mac(const uint8_t* b) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

std::string random_mac() {
  uint8_t b[6];
  if (getrandom(b, sizeof b, 0) != sizeof b) fail_errno("getrandom");
  b[0] = static_cast<uint8_t>((b[0] & 0xfe) | 0x02);
  return format_mac(b);
}

Netlink::Netlink() {
  sk_ = nl_socket_alloc();
  if (!sk_) fail("allocate netlink socket");
  if (int e = nl_connect(sk_, NETLINK_ROUTE); e < 0) {
    nl_socket_free(sk_);
    nl_fail(e, "connect netlink socket");
  }
}

Netlink::~Netlink() {
  if (sk_) nl_socket_free(sk_);
}

Netlink Netlink::in_netns(int netns_fd) {
  UniqueFd self(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!self) fail_errno("open current network namespace");
  if (::setns(netns_fd, CLONE_NEWNET) < 0) fail_errno("enter network namespace");
  nl_sock* sk = nullptr;
  int err = 0;
  sk = nl_socket_alloc();
  if (sk && (err = nl_connect(sk, NETLINK_ROUTE)) < 0) {
    nl_socket_free(sk);
    sk = nullptr;
  }
  // Going back cannot fail for a namespace we were just in; if it does, stop.
  if (::setns(self.get(), CLONE_NEWNET) < 0) std::abort();
  if (!sk) err ? nl_fail(err, "connect netlink socket in the container") : fail("allocate netlink socket");
  return Netlink(sk);
}

int Netlink::fd() const { return nl_socket_get_fd(sk_); }

std::optional<LinkInfo> Netlink::link(const std::string& name) {
  rtnl_link* l = nullptr;
  int e = rtnl_link_get_kernel(sk_, 0, name.c_str(), &l);
  if (e == -NLE_NODEV || e == -NLE_OBJ_NOTFOUND) return std::nullopt;
  if (e < 0) nl_fail(e, "look up link " + name);
  LinkPtr p(l);
  return info_of(l);
}

std::optional<LinkInfo> Netlink::link(int ifindex) {
  rtnl_link* l = nullptr;
  int e = rtnl_link_get_kernel(sk_, ifindex, nullptr, &l);
  if (e == -NLE_NODEV || e == -NLE_OBJ_NOTFOUND) return std::nullopt;
  if (e < 0) nl_fail(e, fmt::format("look up link #{}", ifindex));
  LinkPtr p(l);
  return info_of(l);
}

LinkInfo Netlink::ensure_bridge(const std::string& name, unsigned mtu, bool promisc) {
  auto existing = link(name);
  if (!existing) {
    LinkPtr br(rtnl_link_alloc());
    rtnl_link_set_name(br.get(), name.c_str());
    if (int e = rtnl_link_set_type(br.get(), "bridge"); e < 0) nl_fail(e, "bridge link type");
    if (mtu) rtnl_link_set_mtu(br.get(), mtu);
    rtnl_link_set_flags(br.get(), IFF_UP | (promisc ? IFF_PROMISC : 0));
    int e = rtnl_link_add(sk_, br.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (e < 0 && e != -NLE_EXIST) nl_fail(e, fmt::format("could not add bridge \"{}\"", name));
    existing = link(name);
    if (!existing) fail("bridge \"{}\" vanished after creation", name);
  }
  if (existing->kind != "bridge") fail("\"{}\" already exists but is not a bridge", name);
  unsigned want = IFF_UP | (promisc ? IFF_PROMISC : 0);
  if ((existing->flags & want) != want) {
    LinkPtr orig(rtnl_link_alloc()), change(rtnl_link_alloc());
    rtnl_link_set_ifindex(orig.get(), existing->ifindex);
    rtnl_link_set_flags(change.get(), want);
    if (int e = rtnl_link_change(sk_, orig.get(), change.get(), 0); e < 0)
      nl_fail(e, fmt::format("could not set bridge \"{}\" up{}", name, promisc ? " and promiscuous" : ""));
    existing->flags |= want;
  }
  return *existing;
}

void Netlink::create_veth(const std::string& host_name, const std::string& peer_name, const std::string& peer_mac,
                          unsigned mtu, int peer_netns_fd, int master) {
  LinkPtr veth(rtnl_link_veth_alloc());
  if (!veth.get()) fail("out of memory");
  rtnl_link* peer = rtnl_link_veth_get_peer(veth.get());
  rtnl_link_set_name(veth.get(), host_name.c_str());
  rtnl_link_set_flags(veth.get(), IFF_UP);
  rtnl_link_set_master(veth.get(), master);
  rtnl_link_set_name(peer, peer_name.c_str());
  rtnl_link_set_ns_fd(peer, peer_netns_fd);
  // libnl cannot carry the peer's ifinfomsg flags: the caller sets it up in the pod.
  auto mac = parse_mac(peer_mac);
  rtnl_link_set_addr(peer, mac.get());
  if (mtu) {
    rtnl_link_set_mtu(veth.get(), mtu);
    rtnl_link_set_mtu(peer, mtu);
  }
  int e = rtnl_link_add(sk_, veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_put(peer);
  if (e == -NLE_EXIST) fail("container veth name \"{}\" (or host veth \"{}\") already exists", peer_name, host_name);
  if (e < 0) nl_fail(e, fmt::format("failed to create veth pair {}/{}", host_name, peer_name));
}

void Netlink::set_hairpin(int ifindex, bool on) {
  nl_msg* msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
  if (!msg) fail("out of memory");
  ifinfomsg ifi{};
  ifi.ifi_family = AF_BRIDGE;
  ifi.ifi_index = ifindex;
  nlattr* prot = nullptr;
  if (nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 || !(prot = nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED)) ||
      nla_put_u8(msg, IFLA_BRPORT_MODE, on ? 1 : 0) < 0) {
    nlmsg_free(msg);
    fail("build hairpin request");
  }
  nla_nest_end(msg, prot);
  if (int e = nl_send_sync(sk_, msg); e < 0) nl_fail(e, fmt::format("failed to set hairpin mode on link #{}", ifindex));
}

void Netlink::set_up(int ifindex) {
  LinkPtr orig(rtnl_link_alloc()), change(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), ifindex);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int e = rtnl_link_change(sk_, orig.get(), change.get(), 0); e < 0)
    nl_fail(e, fmt::format("set link #{} up", ifindex));
}

void Netlink::delete_link(int ifindex) {
  LinkPtr l(rtnl_link_alloc());
  rtnl_link_set_ifindex(l.get(), ifindex);
  int e = rtnl_link_delete(sk_, l.get());
  if (e < 0 && e != -NLE_NODEV && e != -NLE_OBJ_NOTFOUND) nl_fail(e, fmt::format("delete link #{}", ifindex));
}

LinkEvents::LinkEvents() {
  fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd_ < 0) return;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

LinkEvents::~LinkEvents() {
  if (fd_ >= 0) ::close(fd_);
}

bool LinkEvents::wait_deleted(int ifindex, int child_pid) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    // Wake up now and then to notice a child that failed without deleting anything.
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 20)));
    if (n < 0 && errno != EINTR) return false;
    if (n <= 0) {
      // Reaped here whatever its status (the caller's fallback checks the link):
      // polling on for a notification we missed would cost the full deadline.
      if (::waitpid(child_pid, nullptr, WNOHANG) == child_pid) return false;
      continue;
    }
    ssize_t len = ::recv(fd_, buf, sizeof buf, 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) return false; // overrun: notifications lost, fall back
      return false;
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(len)); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type != RTM_DELLINK) continue;
      auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
      if (ifi->ifi_index == ifindex) return true;
    }
  }
}

std::vector<IpNet> Netlink::addresses(int ifindex, int family, bool global_only) {
  nl_cache* c = nullptr;
  if (int e = rtnl_addr_alloc_cache(sk_, &c); e < 0) nl_fail(e, "list addresses");
  CachePtr cache(c);
  std::vector<IpNet> out;
  for (nl_object* o = nl_cache_get_first(c); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex) continue;
    if (family && rtnl_addr_get_family(a) != family) continue;
    if (global_only && rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local) continue;
    out.push_back(IpNet{from_nl(local), rtnl_addr_get_prefixlen(a)});
  }
  return out;
}

void Netlink::add_address(int ifindex, const IpNet& a, bool nodad) {
  AddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  auto local = to_nl(a.addr, a.prefix);
  rtnl_addr_set_local(addr.get(), local.get());
  rtnl_addr_set_prefixlen(addr.get(), a.prefix);
  if (a.addr.v6 && nodad) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
  if (!a.addr.v6) {
    // The kernel does not derive the broadcast address; Go's netlink sets it too.
    IpNet n{a.addr, a.prefix};
    auto brd = to_nl(n.last(), a.prefix);
    if (a.prefix < 31) rtnl_addr_set_broadcast(addr.get(), brd.get());
  }
  if (int e = rtnl_addr_add(sk_, addr.get(), 0); e < 0)
    nl_fail(e, fmt::format("failed to add IP address {} to link #{}", a.str(), ifindex));
}

void Netlink::delete_address(int ifindex, const IpNet& a) {
  AddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  auto local = to_nl(a.addr, a.prefix);
  rtnl_addr_set_local(addr.get(), local.get());
  rtnl_addr_set_prefixlen(addr.get(), a.prefix);
  if (int e = rtnl_addr_delete(sk_, addr.get(), 0); e < 0 && e != -NLE_NOADDR && e != -NLE_OBJ_NOTFOUND)
    nl_fail(e, fmt::format("failed to delete IP address {} from link #{}", a.str(), ifindex));
}

void Netlink::add_route(int ifindex, const IpNet& dst, const std::optional<IpAddr>& gw) {
  RoutePtr r(rtnl_route_alloc());
  rtnl_route_set_family(r.get(), dst.addr.family());
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(r.get(), RTPROT_BOOT);
  rtnl_route_set_scope(r.get(), gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  auto d = to_nl(dst.network().addr, dst.prefix);
  if (int e = rtnl_route_set_dst(r.get(), d.get()); e < 0) nl_fail(e, "route destination " + dst.str());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nh, ifindex);
  NlAddrPtr g;
  if (gw) {
    g = to_nl(*gw, gw->v6 ? 128 : 32);
    rtnl_route_nh_set_gateway(nh, g.get());
  }
  rtnl_route_add_nexthop(r.get(), nh);
  if (int e = rtnl_route_add(sk_, r.get(), NLM_F_CREATE | NLM_F_EXCL); e < 0)
    nl_fail(e, fmt::format("failed to add route {}{}", dst.str(), gw ? " via " + gw->str() : ""));
}

std::vector<RouteInfo> Netlink::routes(int family) {
  nl_cache* c = nullptr;
  if (int e = rtnl_route_alloc_cache(sk_, family, 0, &c); e < 0) nl_fail(e, "list routes");
  CachePtr cache(c);
  std::vector<RouteInfo> out;
  for (nl_object* o = nl_cache_get_first(c); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN) continue;
    RouteInfo ri;
    nl_addr* d = rtnl_route_get_dst(r);
    ri.dst = IpNet{from_nl(d), static_cast<int>(nl_addr_get_prefixlen(d))};
    ri.dst.addr.v6 = rtnl_route_get_family(r) == AF_INET6;
    if (rtnl_route_get_nnexthops(r) > 0) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      ri.oif = rtnl_route_nh_get_ifindex(nh);
      if (nl_addr* g = rtnl_route_nh_get_gateway(nh)) ri.gw = from_nl(g);
    }
    out.push_back(ri);
  }
  return out;
}

} // namespace berth::cni
