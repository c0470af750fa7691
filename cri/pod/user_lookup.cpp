#include "cri/pod/user_lookup.hpp"

#include <fcntl.h>

#include <optional>
#include <vector>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"

namespace berth::cri {
namespace {

constexpr size_t kMaxFile = 1 << 20;

struct Entry {
  std::string name;
  uint32_t id = 0, gid = 0;
  std::string home;
  std::vector<std::string> members;
};

std::optional<uint32_t> parse_id(std::string_view s) {
  auto v = parse_uint(s);
  if (!v || *v > 0xFFFFFFFEu) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

// passwd: name:x:uid:gid:gecos:home:shell; group: name:x:gid:member,member
std::vector<Entry> parse_entries(std::string_view text, bool is_group) {
  std::vector<Entry> out;
  for (auto& line : split(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ':', false);
    if (f.size() < (is_group ? 3u : 4u)) continue;
    Entry e;
    e.name = f[0];
    auto id = parse_id(f[2]);
    if (!id) continue;
    e.id = *id;
    if (is_group) {
      if (f.size() > 3) e.members = split(f[3], ',');
    } else {
      auto gid = parse_id(f[3]);
      if (!gid) continue;
      e.gid = *gid;
      if (f.size() > 5) e.home = f[5];
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string read_in_root(int root, const char* path) {
  UniqueFd fd = image::open_in_root(root, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    fail_errno("open {} in the container's root", path);
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read {} in the container's root", path);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFile) fail("{} in the container's root is larger than {} bytes", path, kMaxFile);
  }
  return out;
}

} // namespace

ResolvedUser lookup_user(std::string_view passwd_text, std::string_view group_text, const std::string& spec) {
  if (spec.empty()) return {};
  auto colon = spec.find(':');
  std::string user = spec.substr(0, colon);
  std::optional<std::string> group;
  if (colon != std::string::npos) group = spec.substr(colon + 1);
  auto passwd = parse_entries(passwd_text, false);
  auto groups = parse_entries(group_text, true);

  ResolvedUser r;
  const Entry* pw = nullptr;
  if (auto uid = parse_id(user)) {
    r.uid = *uid;
    for (auto& e : passwd)
      if (e.id == *uid) {
        pw = &e;
        break;
      }
  } else {
    for (auto& e : passwd)
      if (e.name == user) {
        pw = &e;
        break;
      }
    if (!pw) fail_code(EINVAL, "user \"{}\": no such user in the image's /etc/passwd", user);
    r.uid = pw->id;
  }
  if (pw) {
    r.gid = pw->gid;
    r.home = pw->home;
  }
  if (group) {
    if (auto gid = parse_id(*group)) {
      r.gid = *gid;
    } else {
      const Entry* gr = nullptr;
      for (auto& e : groups)
        if (e.name == *group) gr = &e;
      if (!gr) fail_code(EINVAL, "group \"{}\": no such group in the image's /etc/group", *group);
      r.gid = gr->id;
    }
  }
  // Supplementary groups: those listing the user by name (a uid without an entry has none).
  if (pw)
    for (auto& g : groups)
      for (auto& m : g.members)
        if (m == pw->name && g.id != r.gid) {
          r.additional_gids.push_back(g.id);
          break;
        }
  return r;
}

UserResolver rootfs_user_resolver(const std::string& rootfs) {
  return [rootfs](const std::string& spec) {
    UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) fail_errno("open container rootfs {}", rootfs);
    return lookup_user(read_in_root(root.get(), "/etc/passwd"), read_in_root(root.get(), "/etc/group"), spec);
  };
}

} // namespace berth::cri
