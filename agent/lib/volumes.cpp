#include "agent/lib/volumes.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "agent/lib/fs_beneath.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::agent {
namespace {

std::string pod_dir(const Config& cfg, const std::string& uid) {
  // Every UID that reaches a path was checked by parse_pod (or is berthlet's own md5).
  if (!valid_pod_uid(uid)) fail("pod UID {} is not valid", quoted_value(uid));
  return path_join(path_join(cfg.root_dir, "pods"), uid);
}

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

std::string pod_dir_path(const Config& cfg, const std::string& uid) { return pod_dir(cfg, uid); }

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

namespace {

// <rootDir>/pods/<uid>, made when missing, as an O_PATH fd that was reached without
// following a symlink below <rootDir>/pods.
UniqueFd open_pod_dir(const Config& cfg, const std::string& uid) {
  if (!valid_pod_uid(uid)) fail("pod UID {} is not valid", quoted_value(uid));
  auto pods = path_join(cfg.root_dir, "pods");
  mkdir_p(pods, 0750);
  UniqueFd dir(::open(pods.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) fail_errno("open {}", pods);
  return with_context(pods, [&] { return open_or_make_beneath(dir.get(), uid, 0750, false); });
}

std::string subpath_rel(const VolumeMount& vm, const Container& c, size_t index) {
  return fmt::format("volume-subpaths/{}/{}/{}", vm.name, c.name, index);
}

// The subPath of a volume, resolved inside it with openat2 (no symlink followed, missing
// directories made with mkdirat relative to their parent's fd), then bind-mounted from
// that fd (/proc/self/fd/N) onto <rootDir>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>:
// the runtime gets a path only root can change, so a container that swaps a directory of
// its volume for a symlink after the check has nothing to race against (CVE-2017-1002101).
std::string bind_subpath(const Config& cfg, const Pod& pod, const Container& c, size_t index, const VolumeMount& vm,
                         const std::string& base) {
  return with_context(fmt::format("container {:?}: subPath {} of volume {:?}", c.name, quoted_value(vm.sub_path), vm.name), [&] {
    UniqueFd vol(::open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!vol) fail_errno("open the volume at {}", base);
    UniqueFd src = open_or_make_beneath(vol.get(), vm.sub_path, 0755, true);
    struct stat st;
    if (::fstat(src.get(), &st) != 0) fail_errno("stat");
    bool is_dir = S_ISDIR(st.st_mode);

    UniqueFd pod_dir = open_pod_dir(cfg, pod.uid);
    auto rel = subpath_rel(vm, c, index);
    auto slash = rel.rfind('/');
    auto leaf = rel.substr(slash + 1);
    UniqueFd parent = open_or_make_beneath(pod_dir.get(), rel.substr(0, slash), 0750, false);
    // The previous instance's bind (if any) goes: its container holds its own mount.
    unmount_beneath(parent.get(), leaf);
    struct stat cur;
    if (::fstatat(parent.get(), leaf.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(cur.st_mode) != is_dir)
      remove_tree_beneath(parent.get(), leaf);
    if (is_dir) {
      if (::mkdirat(parent.get(), leaf.c_str(), 0750) != 0 && errno != EEXIST) fail_errno("create the mount point");
    } else {
      int fd = ::openat(parent.get(), leaf.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0640);
      if (fd < 0) fail_errno("create the mount point");
      ::close(fd);
    }
    UniqueFd target = open_beneath(parent.get(), leaf, O_PATH);
    if (!target) fail_errno("open the mount point");
    auto from = fmt::format("/proc/self/fd/{}", src.get());
    auto onto = fmt::format("/proc/self/fd/{}", target.get());
    if (::mount(from.c_str(), onto.c_str(), nullptr, MS_BIND, nullptr) != 0) fail_errno("bind-mount");
    return path_join(pod_dir_path(cfg, pod.uid), rel);
  });
}

} // namespace

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
  for (size_t i = 0; i < c.volume_mounts.size(); i++) {
    auto& vm = c.volume_mounts[i];
    auto& v = find_volume(pod, vm.name);
    std::string base = v.kind == Volume::Kind::host_path ? v.host_path : empty_dir_path(cfg, pod.uid, v.name);
    cri::Mount m;
    m.set_container_path(vm.mount_path);
    m.set_host_path(vm.sub_path.empty() ? base : bind_subpath(cfg, pod, c, i, vm, base));
    m.set_readonly(vm.read_only);
    out.push_back(m);
  }
  return out;
}

void release_container_mounts(const Config& cfg, const Pod& pod, const Container& c) {
  UniqueFd pod_dir = open_pod_dir(cfg, pod.uid);
  for (size_t i = 0; i < c.volume_mounts.size(); i++)
    if (!c.volume_mounts[i].sub_path.empty()) unmount_beneath(pod_dir.get(), subpath_rel(c.volume_mounts[i], c, i));
}

void teardown_volumes(const Config& cfg, const std::string& uid) {
  // Only a valid UID names a directory: one read back from the runtime's labels (an
  // orphan) is as untrusted as a manifest's.
  if (!valid_pod_uid(uid)) fail("pod UID {} is not valid: its directory is not removed", quoted_value(uid));
  auto pods_path = path_join(cfg.root_dir, "pods");
  UniqueFd pods(::open(pods_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!pods) {
    if (errno == ENOENT) return;
    fail_errno("open {}", pods_path);
  }
  with_context(path_join(pods_path, uid), [&] {
    UniqueFd dir(::openat(pods.get(), uid.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) {
      if (errno == ENOENT) return;
      if (errno != ENOTDIR && errno != ELOOP) fail_errno("open");
      // Not a directory (a symlink, say): the entry itself goes, never what it points at.
      if (::unlinkat(pods.get(), uid.c_str(), 0) != 0 && errno != ENOENT) fail_errno("remove");
      return;
    }
    // emptyDir tmpfs mounts and subPath binds (and anything else mounted below): detached
    // first; the removal then refuses to enter any mount that is still there.
    unmount_beneath(dir.get(), "");
    remove_tree_beneath(pods.get(), uid);
  });
}

} // namespace berth::agent
