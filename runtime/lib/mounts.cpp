// Parsing of config.json "mounts": options become MS_* flags, propagation,
// recursive mount_setattr(2) attributes, extensions (tmpcopyup, idmap) and,
// for anything unknown, the filesystem's data string, as runc does.
#include <sys/mount.h>

#include <algorithm>
#include <array>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/mount_util.hpp"
#include "runtime/lib/rootfs.hpp"

namespace berth {

namespace {

enum class Kind { set, clear, propagation, rec_set, rec_clear, bind, rbind, tmpcopyup, idmap, ridmap, none };

struct MountOption {
  std::string_view name;
  Kind kind;
  uint64_t value = 0;
  uint64_t also_clear = 0; // rec_set: MOUNT_ATTR__ATIME must be cleared to change the atime enum
};

constexpr uint64_t kAtime = MOUNT_ATTR__ATIME;

// Sorted by name (checked below) for a binary search.
constexpr std::array kOptions = {
    MountOption{"async", Kind::clear, MS_SYNCHRONOUS},
    MountOption{"atime", Kind::clear, MS_NOATIME},
    MountOption{"bind", Kind::bind},
    MountOption{"defaults", Kind::none},
    MountOption{"dev", Kind::clear, MS_NODEV},
    MountOption{"diratime", Kind::clear, MS_NODIRATIME},
    MountOption{"dirsync", Kind::set, MS_DIRSYNC},
    MountOption{"exec", Kind::clear, MS_NOEXEC},
    MountOption{"idmap", Kind::idmap},
    MountOption{"iversion", Kind::set, MS_I_VERSION},
    MountOption{"lazytime", Kind::set, MS_LAZYTIME},
    MountOption{"loud", Kind::clear, MS_SILENT},
    MountOption{"mand", Kind::set, MS_MANDLOCK},
    MountOption{"noatime", Kind::set, MS_NOATIME},
    MountOption{"nodev", Kind::set, MS_NODEV},
    MountOption{"nodiratime", Kind::set, MS_NODIRATIME},
    MountOption{"noexec", Kind::set, MS_NOEXEC},
    MountOption{"noiversion", Kind::clear, MS_I_VERSION},
    MountOption{"nolazytime", Kind::clear, MS_LAZYTIME},
    MountOption{"nomand", Kind::clear, MS_MANDLOCK},
    MountOption{"norelatime", Kind::clear, MS_RELATIME},
    MountOption{"nostrictatime", Kind::clear, MS_STRICTATIME},
    MountOption{"nosuid", Kind::set, MS_NOSUID},
    MountOption{"nosymfollow", Kind::set, MS_NOSYMFOLLOW},
    MountOption{"private", Kind::propagation, MS_PRIVATE},
    MountOption{"ratime", Kind::rec_clear, kAtime},
    MountOption{"rbind", Kind::rbind},
    MountOption{"rdev", Kind::rec_clear, MOUNT_ATTR_NODEV},
    MountOption{"rdiratime", Kind::rec_clear, MOUNT_ATTR_NODIRATIME},
    MountOption{"relatime", Kind::set, MS_RELATIME},
    MountOption{"remount", Kind::set, MS_REMOUNT},
    MountOption{"rexec", Kind::rec_clear, MOUNT_ATTR_NOEXEC},
    MountOption{"ridmap", Kind::ridmap},
    MountOption{"rnoatime", Kind::rec_set, MOUNT_ATTR_NOATIME, kAtime},
    MountOption{"rnodev", Kind::rec_set, MOUNT_ATTR_NODEV},
    MountOption{"rnodiratime", Kind::rec_set, MOUNT_ATTR_NODIRATIME},
    MountOption{"rnoexec", Kind::rec_set, MOUNT_ATTR_NOEXEC},
    MountOption{"rnorelatime", Kind::rec_clear, kAtime},
    MountOption{"rnostrictatime", Kind::rec_clear, kAtime},
    MountOption{"rnosuid", Kind::rec_set, MOUNT_ATTR_NOSUID},
    MountOption{"rnosymfollow", Kind::rec_set, MOUNT_ATTR_NOSYMFOLLOW},
    MountOption{"ro", Kind::set, MS_RDONLY},
    MountOption{"rprivate", Kind::propagation, MS_PRIVATE | MS_REC},
    MountOption{"rrelatime", Kind::rec_set, MOUNT_ATTR_RELATIME, kAtime},
    MountOption{"rro", Kind::rec_set, MOUNT_ATTR_RDONLY},
    MountOption{"rrw", Kind::rec_clear, MOUNT_ATTR_RDONLY},
    MountOption{"rshared", Kind::propagation, MS_SHARED | MS_REC},
    MountOption{"rslave", Kind::propagation, MS_SLAVE | MS_REC},
    MountOption{"rstrictatime", Kind::rec_set, MOUNT_ATTR_STRICTATIME, kAtime},
    MountOption{"rsuid", Kind::rec_clear, MOUNT_ATTR_NOSUID},
    MountOption{"rsymfollow", Kind::rec_clear, MOUNT_ATTR_NOSYMFOLLOW},
    MountOption{"runbindable", Kind::propagation, MS_UNBINDABLE | MS_REC},
    MountOption{"rw", Kind::clear, MS_RDONLY},
    MountOption{"shared", Kind::propagation, MS_SHARED},
    MountOption{"silent", Kind::set, MS_SILENT},
    MountOption{"slave", Kind::propagation, MS_SLAVE},
    MountOption{"strictatime", Kind::set, MS_STRICTATIME},
    MountOption{"suid", Kind::clear, MS_NOSUID},
    MountOption{"symfollow", Kind::clear, MS_NOSYMFOLLOW},
    MountOption{"sync", Kind::set, MS_SYNCHRONOUS},
    MountOption{"tmpcopyup", Kind::tmpcopyup},
    MountOption{"unbindable", Kind::propagation, MS_UNBINDABLE},
};
static_assert(std::is_sorted(kOptions.begin(), kOptions.end(),
                             [](const MountOption& a, const MountOption& b) { return a.name < b.name; }));

const MountOption* find_option(std::string_view name) {
  auto it = std::lower_bound(kOptions.begin(), kOptions.end(), name,
                             [](const MountOption& o, std::string_view n) { return o.name < n; });
  return it != kOptions.end() && it->name == name ? &*it : nullptr;
}

// Applies one option; later options override earlier ones, as with mount(8).
void apply_option(MountSpec& m, std::string_view name, bool& bind) {
  const MountOption* o = find_option(name);
  if (!o) {
    if (!m.data.empty()) m.data += ',';
    m.data += name;
    return;
  }
  switch (o->kind) {
  case Kind::set:
    m.flags |= o->value;
    m.clear_flags &= ~o->value;
    break;
  case Kind::clear:
    m.clear_flags |= o->value;
    m.flags &= ~o->value;
    break;
  case Kind::propagation: m.propagation = o->value; break;
  case Kind::rec_set:
    if (o->also_clear) m.rec_attr_set &= ~kAtime; // the atime settings are an enum, not bits
    m.rec_attr_set |= o->value;
    m.rec_attr_clr = (m.rec_attr_clr & ~o->value) | o->also_clear;
    break;
  case Kind::rec_clear:
    m.rec_attr_clr |= o->value;
    m.rec_attr_set &= ~o->value;
    break;
  case Kind::bind: bind = true; break;
  case Kind::rbind: bind = m.recursive = true; break;
  case Kind::tmpcopyup: m.tmpcopyup = true; break;
  case Kind::idmap: m.idmap = true; break;
  case Kind::ridmap: m.idmap = m.recursive_idmap = true; break;
  case Kind::none: break;
  }
}

std::vector<IdMapping> parse_mappings(const JsonView& list) {
  std::vector<IdMapping> out;
  out.reserve(list.size());
  list.each([&](const JsonView& e) {
    e.expect_object();
    auto field = [&](const char* key) {
      auto v = e[key];
      if (!v.present()) v.bad("required");
      return v.as_u32();
    };
    IdMapping map{field("containerID"), field("hostID"), field("size")};
    if (map.size == 0) e["size"].bad("must be at least 1");
    out.push_back(map);
  });
  return out;
}

void check_no_nul(const JsonView& v, const std::string& s) {
  if (s.find('\0') != std::string::npos) v.bad("must not contain a NUL byte");
}

MountSpec parse_mount(const JsonView& m, const std::string& bundle) {
  m.expect_object();
  MountSpec spec;

  auto dest = m["destination"];
  if (!dest.present()) dest.bad("required");
  std::string d = dest.as_string();
  check_no_nul(dest, d);
  if (d.empty()) dest.bad("must not be empty");
  spec.destination = mnt::clean_path(d);
  if (d[0] != '/') // runc 1.1 accepts these too, with a warning
    log::warn("{} \"{}\" is not an absolute path, taking it as \"{}\"", dest.path(), d, spec.destination);

  spec.type = m.opt_string("type").value_or("");
  spec.source = m.opt_string("source").value_or("");
  check_no_nul(m["type"], spec.type);
  check_no_nul(m["source"], spec.source);

  bool bind = spec.type == "bind";
  auto options = m["options"];
  options.each([&](const JsonView& o) { apply_option(spec, o.as_string(), bind); });
  if (bind) {
    spec.type = "bind";
    if (spec.source.empty()) m["source"].bad("required for a bind mount");
    if (spec.source[0] != '/') spec.source = path_join(bundle, spec.source);
  } else if (spec.type.empty()) {
    m["type"].bad("required for a mount that is not a bind mount");
  }

  auto uids = m["uidMappings"], gids = m["gidMappings"];
  if (uids.present() != gids.present())
    (uids.present() ? gids : uids).bad("required when uidMappings or gidMappings is set");
  if (uids.present()) {
    spec.uid_mappings = parse_mappings(uids);
    spec.gid_mappings = parse_mappings(gids);
    spec.idmap = true;
  }
  if (spec.idmap && !bind) options.bad("idmapped mounts must be bind mounts");
  return spec;
}

} // namespace

std::vector<MountSpec> parse_mounts(const JsonView& mounts, const std::string& bundle) {
  std::vector<MountSpec> out;
  out.reserve(mounts.size());
  mounts.each([&](const JsonView& m) { out.push_back(parse_mount(m, bundle)); });
  return out;
}

std::vector<std::string> known_mount_options() {
  std::vector<std::string> names;
  names.reserve(kOptions.size());
  for (const auto& o : kOptions) names.emplace_back(o.name);
  return names;
}

} // namespace berth
