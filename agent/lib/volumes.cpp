#include "agent/lib/volumes.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::agent {
namespace {

std::string pod_dir(const Config& cfg, const std::string& uid) { return path_join(path_join(cfg.root_dir, "pods"), uid); }

bool is_mount_point(const std::string& path) {
  struct stat st, parent;
  if (::stat(path.c_str(), &st) != 0) return false;
  if (::stat((path + "/..").c_str(), &parent) != 0) return false;
  return st.st_dev != parent.st_dev;
}

void check_host_path(const Volume& v) {
  struct stat st;
  bool exists = ::stat(v.host_path.c_str(), &st) == 0;
  auto want = [&](bool ok, const char* what) {
    if (!exists) fail_code(ENOENT, "volume {:?}: hostPath {} does not exist (type {})", v.name, v.host_path, v.host_path_type);
    if (!ok) fail("volume {:?}: hostPath {} is not a {}", v.name, v.host_path, what);
  };
  const auto& t = v.host_path_type;
  if (t == "DirectoryOrCreate") {
    if (!exists) {
      mkdir_p(v.host_path, 0755);
      return;
    }
    want(S_ISDIR(st.st_mode), "directory");
  } else if (t == "FileOrCreate") {
    if (!exists) {
      auto parent = std::filesystem::path(v.host_path).parent_path().string();
      mkdir_p(parent, 0755);
      int fd = ::open(v.host_path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) fail_errno("volume {:?}: create hostPath file {}", v.name, v.host_path);
      ::close(fd);
      return;
    }
    want(S_ISREG(st.st_mode), "file");
  } else if (t == "Directory") {
    want(S_ISDIR(st.st_mode), "directory");
  } else if (t == "File") {
    want(S_ISREG(st.st_mode), "file");
  } else if (t == "Socket") {
    want(S_ISSOCK(st.st_mode), "socket");
  } else if (t == "CharDevice") {
    want(S_ISCHR(st.st_mode), "character device");
  } else if (t == "BlockDevice") {
    want(S_ISBLK(st.st_mode), "block device");
  }
}

const Volume& find_volume(const Pod& pod, const std::string& name) {
  for (auto& v : pod.spec.volumes)
    if (v.name == name) return v;
  fail("no volume named {:?}", name); // parse_pod checked this already
}

} // namespace

std::string empty_dir_path(const Config& cfg, const std::string& uid, const std::string& volume) {
  return path_join(path_join(pod_dir(cfg, uid), "volumes/kubernetes.io~empty-dir"), volume);
}

void setup_volumes(const Config& cfg, const Pod& pod) {
  for (auto& v : pod.spec.volumes) {
    if (v.kind == Volume::Kind::host_path) {
      check_host_path(v);
      continue;
    }
    auto dir = empty_dir_path(cfg, pod.uid, v.name);
    with_context(fmt::format("volume {:?}", v.name), [&] {
      mkdir_p(dir, 0755);
      ::chmod(dir.c_str(), 0777); // emptyDir is world-writable, as the kubelet makes it
      if (v.empty_dir_medium == "Memory" && !is_mount_point(dir)) {
        std::string opts = v.size_limit ? fmt::format("mode=0777,size={}", *v.size_limit) : "mode=0777";
        if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
          fail_errno("mount tmpfs on {}", dir);
      }
    });
  }
}

std::string etc_hosts_content(const Config& cfg, const Pod& pod, const std::string& pod_ip) {
  std::string hostname = pod.spec.hostname.empty() ? pod.name : pod.spec.hostname;
  if (hostname.size() > 63) hostname.resize(63);
  std::string names = hostname;
  if (!pod.spec.subdomain.empty() && !cfg.cluster_domain.empty())
    names = fmt::format("{}.{}.{}.svc.{}\t{}", hostname, pod.spec.subdomain, pod.namespace_, cfg.cluster_domain, hostname);
  return fmt::format("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
                     "{}\t{}\n",
                     pod_ip, names);
}

std::string write_etc_hosts(const Config& cfg, const Pod& pod, const std::string& pod_ip) {
  if (pod.spec.host_network || pod_ip.empty()) return "";
  auto path = path_join(pod_dir(cfg, pod.uid), "etc-hosts");
  mkdir_p(pod_dir(cfg, pod.uid), 0750);
  write_file_atomic(path, etc_hosts_content(cfg, pod, pod_ip), 0644, false);
  return path;
}

std::vector<cri::Mount> container_mounts(const Config& cfg, const Pod& pod, const Container& c,
                                         const std::string& etc_hosts) {
  std::vector<cri::Mount> out;
  bool own_hosts = false;
  for (auto& vm : c.volume_mounts) own_hosts |= vm.mount_path == "/etc/hosts";
  if (!etc_hosts.empty() && !own_hosts) {
    cri::Mount m;
    m.set_container_path("/etc/hosts");
    m.set_host_path(etc_hosts);
    out.push_back(m);
  }
  for (auto& vm : c.volume_mounts) {
    auto& v = find_volume(pod, vm.name);
    std::string base = v.kind == Volume::Kind::host_path ? v.host_path : empty_dir_path(cfg, pod.uid, v.name);
    std::string host = base;
    if (!vm.sub_path.empty()) {
      host = path_join(base, vm.sub_path);
      // The kubelet creates a missing subPath directory and refuses one that leaves the volume.
      std::error_code ec;
      if (!std::filesystem::exists(host, ec)) mkdir_p(host, 0755);
      auto real = std::filesystem::canonical(host, ec).string();
      auto real_base = std::filesystem::canonical(base, ec).string();
      if (ec || !(real == real_base || starts_with(real, real_base + "/")))
        fail("container {:?}: subPath {:?} of volume {:?} leaves the volume", c.name, vm.sub_path, vm.name);
      host = real;
    }
    cri::Mount m;
    m.set_container_path(vm.mount_path);
    m.set_host_path(host);
    m.set_readonly(vm.read_only);
    out.push_back(m);
  }
  return out;
}

void teardown_volumes(const Config& cfg, const std::string& uid) {
  auto dir = pod_dir(cfg, uid);
  auto volumes = path_join(dir, "volumes/kubernetes.io~empty-dir");
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(volumes, ec)) {
    auto p = e.path().string();
    if (is_mount_point(p)) ::umount2(p.c_str(), MNT_DETACH);
  }
  // remove_all does not cross into a mount it could not detach: check first.
  for (auto& e : std::filesystem::directory_iterator(volumes, ec))
    if (is_mount_point(e.path().string())) return;
  std::filesystem::remove_all(dir, ec);
}

void remove_pod_cgroups(const Config& cfg, const std::string& uid) {
  auto mountinfo = try_read_file("/proc/self/mountinfo");
  if (!mountinfo) return;
  for (auto& line : split(*mountinfo, '\n')) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto fstype = split(line.substr(dash + 3), ' ');
    if (fstype.empty() || (fstype[0] != "cgroup" && fstype[0] != "cgroup2")) continue;
    auto fields = split(line.substr(0, dash), ' ');
    if (fields.size() < 5) continue;
    auto base = path_join(path_join(fields[4], cfg.cgroup_root), "kubepods");
    for (auto* qos : {"", "burstable", "besteffort"}) {
      auto dir = path_join(*qos ? path_join(base, qos) : base, "pod" + uid);
      ::rmdir(dir.c_str());
    }
  }
}

} // namespace berth::agent
