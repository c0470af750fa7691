#include "cni/bridge/host_local.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

namespace berth::cni {

namespace {

constexpr std::string_view kLineBreak = "\r\n";
constexpr std::string_view kLastIpPrefix = "last_reserved_ip.";

std::optional<IpAddr> opt_ip(const JsonView& v, const char* key) {
  auto s = v.opt_string(key);
  if (!s || s->empty()) return std::nullopt;
  return must_parse_ip(*s, v[key].path());
}

IpRange parse_range(const JsonView& v) {
  v.expect_object();
  auto subnet_s = v.opt_string("subnet");
  if (!subnet_s) v["subnet"].bad("missing (e.g. \"10.22.0.0/16\")");
  IpRange r;
  IpNet given = must_parse_cidr(*subnet_s, v["subnet"].path());
  r.subnet = given.network();
  if (!(r.subnet.addr == given.addr))
    v["subnet"].bad(fmt::format("network has host bits set: for a /{} the network address is {}", given.prefix,
                                r.subnet.addr.str()));
  if (r.subnet.prefix > static_cast<int>(r.subnet.addr.len() * 8) - 2)
    v["subnet"].bad(fmt::format("network {} too small to allocate from", r.subnet.str()));
  auto in_subnet = [&](const char* key, IpAddr a) {
    if (!r.subnet.contains(a)) v[key].bad(fmt::format("{} not in network {}", a.str(), r.subnet.str()));
    return a;
  };
  r.gateway = opt_ip(v, "gateway").value_or(r.subnet.addr.next());
  r.start = opt_ip(v, "rangeStart") ? in_subnet("rangeStart", *opt_ip(v, "rangeStart")) : r.subnet.addr.next();
  IpAddr last = r.subnet.last();
  r.end = opt_ip(v, "rangeEnd") ? in_subnet("rangeEnd", *opt_ip(v, "rangeEnd")) : (last.v6 ? last : last.prev());
  if (r.end < r.start) v.bad(fmt::format("rangeEnd {} is before rangeStart {}", r.end.str(), r.start.str()));
  return r;
}

bool overlaps(const IpRange& a, const IpRange& b) {
  return a.subnet.addr.v6 == b.subnet.addr.v6 && !(a.end < b.start) && !(b.end < a.start);
}

std::string ip_file_name(const IpAddr& ip) { return ip.str(); }

} // namespace

bool IpRange::contains(const IpAddr& a) const { return subnet.contains(a) && !(a < start) && !(end < a); }

HostLocalConfig parse_host_local(const json& ipam, const std::string& network) {
  JsonView v(ipam, "ipam");
  v.expect_object();
  HostLocalConfig c;
  c.network = network;
  if (auto d = v.opt_string("dataDir"); d && !d->empty()) c.data_dir = *d;
  c.resolv_conf = v.opt_string("resolvConf").value_or("");
  if (v["subnet"].present()) {
    c.range_sets.push_back({parse_range(v)}); // the legacy single-range form
  }
  v["ranges"].each([&](const JsonView& set) {
    RangeSet rs;
    set.each([&](const JsonView& r) { rs.push_back(parse_range(r)); });
    if (rs.empty()) set.bad("empty range set");
    for (size_t i = 1; i < rs.size(); ++i)
      if (rs[i].subnet.addr.v6 != rs[0].subnet.addr.v6) set.bad("mixed address families in one range set");
    c.range_sets.push_back(std::move(rs));
  });
  if (c.range_sets.empty()) v["ranges"].bad("no IP ranges specified (set \"ranges\" or \"subnet\")");
  for (size_t i = 0; i < c.range_sets.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      for (const auto& a : c.range_sets[i])
        for (const auto& b : c.range_sets[j])
          if (overlaps(a, b))
            v["ranges"].bad(fmt::format("range set {} overlaps with range set {}", i, j));
  v["routes"].each([&](const JsonView& r) {
    must_parse_cidr(r["dst"].as_string(), r["dst"].path());
    if (auto gw = r.opt_string("gw")) must_parse_ip(*gw, r["gw"].path());
    c.routes.push_back(r.raw());
  });
  return c;
}

HostLocalStore::HostLocalStore(const std::string& data_dir, const std::string& network)
    : dir_(path_join(data_dir, network)) {
  with_context("host-local store", [&] { mkdir_p(dir_, 0755); });
  std::string lock_path = path_join(dir_, "lock");
  lock_.reset(::open(lock_path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_) fail_errno("open lock file {}", lock_path);
  while (::flock(lock_.get(), LOCK_EX) < 0)
    if (errno != EINTR) fail_errno("lock {}", lock_path);
}

bool HostLocalStore::reserve(const std::string& id, const std::string& ifname, const IpAddr& ip,
                             const std::string& range_id) {
  std::string p = path_join(dir_, ip_file_name(ip));
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_EXCL | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == EEXIST) return false;
    fail_errno("reserve {}", p);
  }
  try {
    write_all(fd.get(), std::string(trim(id)) + std::string(kLineBreak) + ifname);
  } catch (...) {
    ::unlink(p.c_str());
    throw;
  }
  write_file(path_join(dir_, std::string(kLastIpPrefix) + range_id), ip.str(), true, 0600);
  return true;
}

std::optional<IpAddr> HostLocalStore::last_reserved(const std::string& range_id) const {
  auto s = try_read_file(path_join(dir_, std::string(kLastIpPrefix) + range_id));
  if (!s) return std::nullopt;
  return IpAddr::parse(std::string(trim(*s)));
}

std::vector<HostLocalStore::Entry> HostLocalStore::entries() const {
  std::vector<Entry> out;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    auto ip = IpAddr::parse(e->d_name);
    if (!ip) continue;
    auto data = try_read_file(path_join(dir_, e->d_name));
    if (!data) continue;
    std::string content(trim(*data));
    Entry en{*ip, content, ""};
    if (auto pos = content.find(kLineBreak); pos != std::string::npos) {
      en.id = content.substr(0, pos);
      en.ifname = content.substr(pos + kLineBreak.size());
    }
    out.push_back(std::move(en));
  }
  ::closedir(d);
  return out;
}

std::vector<IpAddr> HostLocalStore::get_by_id(const std::string& id, const std::string& ifname) const {
  std::vector<IpAddr> out;
  std::string tid(trim(id));
  for (const auto& e : entries())
    if (e.id == tid && (e.ifname == ifname || e.ifname.empty())) out.push_back(e.ip);
  return out;
}

void HostLocalStore::release_by_id(const std::string& id, const std::string& ifname) {
  std::string tid(trim(id));
  auto all = entries();
  bool found = false;
  // Files written as "<id>\r\n<ifname>" first; the pre-0.8 "<id>" form only if none matched.
  for (int pass = 0; pass < 2 && !found; ++pass) {
    for (const auto& e : all) {
      bool match = e.id == tid && (pass == 0 ? e.ifname == ifname : e.ifname.empty());
      if (!match) continue;
      std::string p = path_join(dir_, ip_file_name(e.ip));
      if (::unlink(p.c_str()) < 0 && errno != ENOENT) fail_errno("release {}", p);
      found = true;
    }
  }
}

void HostLocalStore::release(const IpAddr& ip) {
  std::string p = path_join(dir_, ip_file_name(ip));
  if (::unlink(p.c_str()) < 0 && errno != ENOENT) fail_errno("release {}", p);
}

namespace {

// One address from a range set, round-robin from the last reserved one (the
// reference allocator's iterator).
std::optional<std::pair<IpNet, IpAddr>> allocate_from(HostLocalStore& store, const RangeSet& rs, size_t set_index,
                                                      const std::string& id, const std::string& ifname) {
  std::string range_id = std::to_string(set_index);
  size_t ri = 0;
  std::optional<IpAddr> cur;
  if (auto last = store.last_reserved(range_id)) {
    for (size_t i = 0; i < rs.size(); ++i)
      if (rs[i].contains(*last)) {
        ri = i;
        cur = *last;
        break;
      }
  }
  std::optional<IpAddr> first;
  for (;;) {
    if (!cur) {
      cur = rs[ri].start;
    } else if (*cur == rs[ri].end) {
      ri = (ri + 1) % rs.size();
      cur = rs[ri].start;
    } else {
      cur = cur->next();
    }
    if (first && *cur == *first) return std::nullopt; // wrapped around: full
    if (!first) first = cur;
    if (*cur == rs[ri].gateway) continue;
    if (store.reserve(id, ifname, *cur, range_id))
      return std::make_pair(IpNet{*cur, rs[ri].subnet.prefix}, rs[ri].gateway);
  }
}

std::string describe(const RangeSet& rs) {
  std::string s;
  for (const auto& r : rs) s += (s.empty() ? "" : ",") + r.start.str() + "-" + r.end.str();
  return s;
}

} // namespace

json host_local_add(const HostLocalConfig& cfg, const std::string& id, const std::string& ifname,
                    const std::vector<IpAddr>& requested, const std::string& cni_version) {
  HostLocalStore store(cfg.data_dir, cfg.network);
  std::vector<std::optional<IpAddr>> wanted(cfg.range_sets.size());
  for (const auto& ip : requested) {
    bool placed = false;
    for (size_t i = 0; i < cfg.range_sets.size() && !placed; ++i)
      for (const auto& r : cfg.range_sets[i])
        if (r.contains(ip)) {
          wanted[i] = ip;
          placed = true;
          break;
        }
    if (!placed) fail("requested IP address {} is not in any configured range", ip.str());
  }
  json ips = json::array();
  std::vector<IpAddr> reserved;
  try {
    for (size_t i = 0; i < cfg.range_sets.size(); ++i) {
      const RangeSet& rs = cfg.range_sets[i];
      for (const auto& ip : store.get_by_id(id, ifname))
        for (const auto& r : rs)
          if (r.contains(ip))
            fail("{} has been allocated to {}, duplicate allocation is not allowed", ip.str(), id);
      std::optional<std::pair<IpNet, IpAddr>> got;
      if (wanted[i]) {
        const IpRange* r = nullptr;
        for (const auto& x : rs)
          if (x.contains(*wanted[i])) r = &x;
        if (*wanted[i] == r->gateway) fail("requested ip {} is subnet's gateway", wanted[i]->str());
        if (!store.reserve(id, ifname, *wanted[i], std::to_string(i)))
          fail("requested IP address {} is not available in range set {}", wanted[i]->str(), describe(rs));
        got = std::make_pair(IpNet{*wanted[i], r->subnet.prefix}, r->gateway);
      } else {
        got = allocate_from(store, rs, i, id, ifname);
        if (!got) fail("no IP addresses available in range set: {}", describe(rs));
      }
      reserved.push_back(got->first.addr);
      ips.push_back({{"address", got->first.str()}, {"gateway", got->second.str()}});
    }
  } catch (...) {
    // Only what this call reserved: a refused duplicate ADD must not free the
    // addresses the container already holds.
    for (const auto& ip : reserved) store.release(ip);
    throw;
  }
  json r = {{"cniVersion", "1.0.0"}, {"ips", std::move(ips)}};
  if (!cfg.routes.empty()) r["routes"] = cfg.routes;
  if (!cfg.resolv_conf.empty()) r["dns"] = parse_resolv_conf(cfg.resolv_conf);
  return convert_result(r, cni_version);
}

void host_local_del(const HostLocalConfig& cfg, const std::string& id, const std::string& ifname) {
  HostLocalStore store(cfg.data_dir, cfg.network);
  store.release_by_id(id, ifname);
}

void host_local_check(const HostLocalConfig& cfg, const std::string& id, const std::string& ifname) {
  HostLocalStore store(cfg.data_dir, cfg.network);
  if (store.get_by_id(id, ifname).empty())
    fail("host-local: failed to find address added by container {} (interface {}) in {}", id, ifname, store.dir());
}

void host_local_gc(const HostLocalConfig& cfg, const std::vector<std::pair<std::string, std::string>>& valid) {
  HostLocalStore store(cfg.data_dir, cfg.network);
  for (const auto& e : store.entries()) {
    bool keep = false;
    for (const auto& [cid, ifname] : valid) keep = keep || (cid == e.id && (ifname == e.ifname || e.ifname.empty()));
    if (keep) continue;
    std::string p = path_join(store.dir(), ip_file_name(e.ip));
    if (::unlink(p.c_str()) < 0 && errno != ENOENT) fail_errno("release {}", p);
  }
}

json parse_resolv_conf(const std::string& path) {
  std::string text = with_context("read resolvConf", [&] { return read_file(path); });
  json dns = json::object();
  for (const auto& line : split(text, '\n')) {
    auto f = split(trim(line), ' ');
    std::vector<std::string> fields;
    for (auto& x : f)
      for (auto& y : split(x, '\t')) fields.push_back(y);
    if (fields.size() < 2 || fields[0][0] == '#' || fields[0][0] == ';') continue;
    if (fields[0] == "nameserver") dns["nameservers"].push_back(fields[1]);
    else if (fields[0] == "domain") dns["domain"] = fields[1];
    else if (fields[0] == "search") dns["search"] = std::vector<std::string>(fields.begin() + 1, fields.end());
    else if (fields[0] == "options") dns["options"] = std::vector<std::string>(fields.begin() + 1, fields.end());
  }
  return dns;
}

} // namespace berth::cni
