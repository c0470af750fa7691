#include "cri/pod/sandbox_files.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <string_view>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "cri/pod/namespaces.hpp"

namespace berth::cri {

namespace {

constexpr size_t kMaxServers = 32;         // glibc reads 3; more is a client's mistake, not a reason to fail
constexpr size_t kMaxSearches = 32;        // the kubelet's MaxDNSSearchPaths
constexpr size_t kMaxSearchChars = 2048;   // the kubelet's MaxDNSSearchListChars (joined with spaces)
constexpr size_t kMaxSearchEntry = 253;    // a DNS name
constexpr size_t kMaxOptions = 64;
constexpr size_t kMaxOptionChars = 128;
constexpr size_t kMaxHostFile = 1 << 20;   // the host's hosts and resolv.conf we copy

// localhost lines for a pod on its own network: what a fresh Debian /etc/hosts holds,
// without the node's names (they do not resolve to the node inside the pod's network).
constexpr std::string_view kPodHosts =
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "fe00::0 ip6-localnet\n"
    "ff00::0 ip6-mcastprefix\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n";


bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

void validate_server(size_t i, const std::string& server) {
  auto bad = [&](std::string_view why) {
    fail_code(EINVAL, "dns_config.servers[{}]: {} {}", i, quoted_value(server), why);
  };
  if (server.empty() || server.size() > 64) bad("is not an IP address");
  for (unsigned char c : server)
    if (c <= ' ' || c >= 0x7f) bad("is not an IP address");  // NUL, newline, space: never pass them on
  std::string addr = server, zone;
  if (auto pct = server.find('%'); pct != std::string::npos) {
    addr = server.substr(0, pct);
    zone = server.substr(pct + 1);
    if (zone.empty() || zone.size() > 15) bad("has an invalid IPv6 zone");
    for (char c : zone)
      if (!name_char(c)) bad("has an invalid IPv6 zone");
  }
  unsigned char buf[16];
  if (zone.empty() && ::inet_pton(AF_INET, addr.c_str(), buf) == 1) return;
  if (::inet_pton(AF_INET6, addr.c_str(), buf) == 1) return;
  bad("is not an IP address");
}

void validate_search(size_t i, const std::string& search) {
  if (search.empty() || search.size() > kMaxSearchEntry)
    fail_code(EINVAL, "dns_config.searches[{}]: {} is not a domain name (1 to {} bytes)", i, quoted_value(search),
              kMaxSearchEntry);
  for (char c : search)
    if (!name_char(c))
      fail_code(EINVAL, "dns_config.searches[{}]: {} is not a domain name (letters, digits, '-', '.', '_')", i,
                quoted_value(search));
}

void validate_option(size_t i, const std::string& option) {
  if (option.empty() || option.size() > kMaxOptionChars)
    fail_code(EINVAL, "dns_config.options[{}]: {} must be 1 to {} bytes", i, quoted_value(option), kMaxOptionChars);
  for (char c : option)
    if (!(name_char(c) || c == ':'))
      fail_code(EINVAL, "dns_config.options[{}]: {} is not a resolv.conf option (letters, digits, '-', '.', '_', ':')",
                i, quoted_value(option));
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

// containerd's parseDNSOptions: search, nameserver lines, options; "" when all are empty.
std::string resolv_conf_of(const SandboxFilesRequest& req) {
  std::string out;
  if (!req.dns_searches.empty()) out += "search " + join(req.dns_searches, " ") + "\n";
  for (auto& s : req.dns_servers) out += "nameserver " + s + "\n";
  if (!req.dns_options.empty()) out += "options " + join(req.dns_options, " ") + "\n";
  return out;
}

std::string read_host_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_errno("read the host's {}", path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) fail_errno("stat {}", path);
  if (!S_ISREG(st.st_mode)) fail_code(EINVAL, "the host's {} is not a regular file", path);
  if (st.st_size > static_cast<off_t>(kMaxHostFile))
    fail_code(EFBIG, "the host's {} is larger than {} bytes", path, kMaxHostFile);
  return read_file(path);
}

std::string node_hostname() {
  struct utsname u;
  if (::uname(&u) < 0) fail_errno("uname");
  return u.nodename;
}

bool is_mount_root(int dirfd, const char* path) {
  struct statx stx;
  if (::statx(dirfd, path, AT_SYMLINK_NOFOLLOW | (*path ? 0 : AT_EMPTY_PATH), STATX_BASIC_STATS, &stx) < 0)
    return false;
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

} // namespace

SandboxFiles prepare_sandbox_files(const SandboxFilesRequest& req) {
  // Validate all of it before writing anything.
  if (req.dir.empty()) fail_code(EINVAL, "pod directory: empty path");
  validate_pod_hostname(req.hostname);
  if (req.dns_servers.size() > kMaxServers)
    fail_code(EINVAL, "dns_config.servers: {} entries, at most {}", req.dns_servers.size(), kMaxServers);
  for (size_t i = 0; i < req.dns_servers.size(); ++i) validate_server(i, req.dns_servers[i]);
  if (req.dns_searches.size() > kMaxSearches)
    fail_code(EINVAL, "dns_config.searches: {} entries, at most {}", req.dns_searches.size(), kMaxSearches);
  for (size_t i = 0; i < req.dns_searches.size(); ++i) validate_search(i, req.dns_searches[i]);
  if (size_t n = join(req.dns_searches, " ").size(); n > kMaxSearchChars)
    fail_code(EINVAL, "dns_config.searches: {} characters, at most {}", n, kMaxSearchChars);
  if (req.dns_options.size() > kMaxOptions)
    fail_code(EINVAL, "dns_config.options: {} entries, at most {}", req.dns_options.size(), kMaxOptions);
  for (size_t i = 0; i < req.dns_options.size(); ++i) validate_option(i, req.dns_options[i]);
  if (req.private_shm && req.shm_size == 0) fail_code(EINVAL, "shm size: must not be 0 (a tmpfs without a limit)");

  std::string dir = req.dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  {
    struct stat st;
    if (::stat(dir.c_str(), &st) < 0) fail_errno("pod directory {}", dir);
    if (!S_ISDIR(st.st_mode)) fail_code(ENOTDIR, "pod directory {}", dir);
  }

  // Contents: everything read from the host is read before anything is written.
  std::string hostname = (req.hostname.empty() ? node_hostname() : req.hostname) + "\n";
  std::string hosts = req.host_network ? read_host_file(req.host_hosts) : std::string(kPodHosts);
  std::string resolv = resolv_conf_of(req);
  // As containerd does: without DNS settings the pod gets the host's resolv.conf, host
  // network or not.
  if (resolv.empty()) resolv = read_host_file(req.host_resolv_conf);

  SandboxFiles out;
  out.hostname = dir + "/hostname";
  out.hosts = dir + "/hosts";
  out.resolv_conf = dir + "/resolv.conf";
  std::vector<std::string> written;
  bool made_shm = false, mounted_shm = false;
  std::string shm = dir + "/shm";
  try {
    // The tmpfs first: a pod directory that cannot take it is refused before any file
    // in it is replaced.
    if (req.private_shm) {
      if (::mkdir(shm.c_str(), 0700) == 0) made_shm = true;
      else if (errno != EEXIST) fail_errno("create {}", shm);
      UniqueFd fd(::open(shm.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) fail_errno("open {}", shm);
      if (is_mount_root(fd.get(), "")) fail_code(EBUSY, "{}: something is mounted there already", shm);
      std::string data = fmt::format("mode=1777,size={}", req.shm_size);
      std::string target = fmt::format("/proc/self/fd/{}", fd.get());  // the directory opened above, no symlink
      if (::mount("shm", target.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data.c_str()) < 0)
        fail_errno("mount tmpfs on {} ({})", shm, data);
      mounted_shm = true;
      out.shm = shm;
    }
    const std::pair<const std::string*, const std::string*> files[] = {
        {&out.hostname, &hostname}, {&out.hosts, &hosts}, {&out.resolv_conf, &resolv}};
    for (auto [path, text] : files) {
      written.push_back(*path);
      write_file_atomic(*path, *text, 0644, /*durable=*/false);
    }
  } catch (...) {
    for (auto& p : written) ::unlink(p.c_str());
    if (mounted_shm) ::umount2(shm.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    if (made_shm) ::rmdir(shm.c_str());
    throw;
  }
  return out;
}

void release_sandbox_shm(const std::string& dir) {
  std::string shm = path_join(dir, "shm");
  for (int i = 0; is_mount_root(AT_FDCWD, shm.c_str()); ++i) {
    if (i == 64) fail_code(EBUSY, "unmount {}: still mounted after 64 unmounts", shm);
    if (::umount2(shm.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
      fail_errno("unmount {}", shm);
  }
}

} // namespace berth::cri
