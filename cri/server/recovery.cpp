// Start-up: berthd may have been stopped, or killed at any instruction. Records in
// phase "creating" are undone; live shims are trusted (their containers keep running);
// exits recorded while berthd was down are applied; what nobody owns any more (shims,
// runtime state, snapshots, pod directories without a record) is removed.
#include <dirent.h>

#include <set>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/image/fs_util.hpp"
#include "cri/pod/namespaces.hpp"
#include "cri/pod/sandbox_files.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/runtime.hpp"

namespace berth::cri {
namespace {

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  ::closedir(d);
  return out;
}

bool looks_like_id(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

} // namespace

void Runtime::recover_sandbox(const SandboxPtr& s) {
  if (s->rec.phase == SandboxPhase::creating) {
    dlog::info("removing a pod sandbox left half-made", {{"id", s->id()}});
    release_sandbox_resources(*s, true);
    image::remove_tree(s->rec.dir);
    drop(s);
    return;
  }
  if (s->rec.phase != SandboxPhase::ready) return;
  bool pins_ok = (s->rec.netns.empty() || is_pinned_namespace(s->rec.netns)) &&
                 (s->rec.ipcns.empty() || is_pinned_namespace(s->rec.ipcns)) &&
                 (s->rec.utsns.empty() || is_pinned_namespace(s->rec.utsns));
  bool pause_ok = s->rec.pause_id.empty() || shim_alive(shim_, s->rec.pause_id);
  if (!pins_ok || !pause_ok) {
    // A reboot took the namespaces, or the pause process died: the kubelet will make a new pod.
    dlog::warn("pod sandbox lost its namespaces or pause process: not ready",
               {{"id", s->id()}, {"pins", pins_ok ? "ok" : "gone"}, {"pause", pause_ok ? "ok" : "gone"}});
    std::lock_guard lk(s->mu);
    s->pause_exited = true;
  }
}

void Runtime::recover_container(const ContainerPtr& c) {
  ContainerRecord rec;
  {
    std::lock_guard lk(c->mu);
    rec = c->rec;
  }
  if (rec.phase == ContainerPhase::creating) {
    dlog::info("removing a container left half-made", {{"id", rec.id}});
    release_container_resources(rec);
    drop(c);
    return;
  }
  if (!find_sandbox(rec.sandbox_id)) {
    dlog::warn("removing a container whose pod sandbox is gone", {{"id", rec.id}, {"sandbox", rec.sandbox_id}});
    release_container_resources(rec);
    drop(c);
    return;
  }
  if (rec.phase == ContainerPhase::exited) return;
  auto exit = read_exit_record(shim_.exit_dir, rec.id);
  bool alive = shim_alive(shim_, rec.id);
  if (exit) {
    std::lock_guard lk(c->mu);
    apply_exit(*c, *exit);
  } else if (alive) {
    // The shim kept the container while berthd was away (StartContainer may have been
    // interrupted after the shim started it: then it runs now).
    auto state = shim_request(shim_, rec.id, "state");
    std::lock_guard lk(c->mu);
    if (state && state->value("pid", int64_t{0}) > 0) {
      c->rec.pid = state->value("pid", int64_t{0});
      if (c->rec.phase == ContainerPhase::created) c->rec.started_ns = now_ns();
      c->rec.phase = ContainerPhase::running;
    }
  } else if (rec.phase == ContainerPhase::running) {
    // Running without a monitor (its shim was killed): nobody would ever report its exit.
    dlog::warn("container lost its shim: killing it", {{"id", rec.id}});
    std::string handler_name;
    if (auto s = find_sandbox(rec.sandbox_id)) handler_name = s->rec.runtime_handler;
    try {
      handler(handler_name).remove(rec.id);
    } catch (const Error& e) {
      dlog::warn("delete container without shim", {{"id", rec.id}, {"error", e.what()}});
    }
    std::lock_guard lk(c->mu);
    ExitRecord lost;
    lost.exit_code = 255;
    apply_exit(*c, lost, "Unknown");
    c->rec.message = "the container's monitor (berth-shim) was gone when berthd started; it was killed";
  } else {
    // Created, no shim: a StartContainer interrupted before the shim ran, or one whose
    // runtime create left state behind. Clear the runtime's state; it can still start.
    std::string handler_name;
    if (auto s = find_sandbox(rec.sandbox_id)) handler_name = s->rec.runtime_handler;
    handler(handler_name).remove(rec.id);
    image::remove_tree(path_join(shim_.state_root, rec.id));
  }
  persist(*c);
}

void Runtime::remove_orphans() {
  std::set<std::string> known;
  for (auto& s : sandboxes()) known.insert(s->id());
  for (auto& c : containers()) known.insert(c->id());
  // Shims of containers nobody knows: delete the container; the shim then exits.
  for (auto& id : dir_entries(shim_.state_root)) {
    if (id == "exits" || known.count(id)) continue;
    dlog::warn("removing an orphaned container", {{"id", id}});
    for (auto& [_, h] : handlers_) {
      try {
        h.remove(id);
      } catch (const Error& e) {
        dlog::debug("orphan delete", {{"id", id}, {"error", e.what()}});
      }
    }
    if (!shim_alive(shim_, id)) image::remove_tree(path_join(shim_.state_root, id));
  }
  for (auto& id : dir_entries(shim_.exit_dir))
    if (!known.count(id)) ::unlink(path_join(shim_.exit_dir, id).c_str());
  for (auto& [_, h] : handlers_) {
    std::vector<std::string> ids;
    try {
      ids = h.list();
    } catch (const Error& e) {
      dlog::debug("list runtime state", {{"handler", h.handler().name}, {"error", e.what()}});
    }
    for (auto& id : ids)
      if (!known.count(id)) {
        dlog::warn("removing orphaned runtime state", {{"id", id}, {"handler", h.handler().name}});
        h.remove(id);
      }
  }
  for (auto& id : dir_entries(path_join(cfg_.state_dir, "sandboxes"))) {
    if (known.count(id) || !looks_like_id(id)) continue;
    std::string dir = sandbox_dir(id);
    unpin_namespaces(path_join(dir, "ns"));
    release_sandbox_shm(dir);
    image::remove_tree(dir);
  }
  for (auto& id : dir_entries(path_join(cfg_.state_dir, "containers"))) {
    if (known.count(id) || !looks_like_id(id)) continue;
    ContainerRecord orphan;
    orphan.id = id;
    orphan.bundle = bundle_dir(id);
    release_container_resources(orphan);
  }
  for (auto& info : images_.snapshots().list())
    if (info.kind == image::SnapshotKind::active && looks_like_id(info.key) && !known.count(info.key)) {
      dlog::warn("removing an orphaned container snapshot", {{"key", info.key}});
      images_.snapshots().remove(info.key);
    }
}

void Runtime::recover() {
  auto loaded = records_->load();
  for (auto& e : loaded.errors) dlog::warn("runtime record", {{"error", e}});
  {
    std::unique_lock lk(index_mu_);
    for (auto& r : loaded.sandboxes) {
      auto s = std::make_shared<Sandbox>(std::move(r));
      names_.emplace(s->rec.name, s->id());
      sandboxes_.emplace(s->id(), s);
    }
    for (auto& r : loaded.containers) {
      auto c = std::make_shared<Container>(std::move(r));
      names_.emplace(c->rec.name, c->id());
      containers_.emplace(c->id(), c);
    }
  }
  // The exit watcher first: an exit during recovery is then either seen here or reported.
  exits_ = std::make_unique<ExitWatcher>(shim_.exit_dir, [this](const std::string& id) { on_exit(id); });
  for (auto& s : sandboxes()) {
    try {
      recover_sandbox(s);
    } catch (const std::exception& e) {
      dlog::error("recover pod sandbox", {{"id", s->id()}, {"error", e.what()}});
    }
  }
  for (auto& c : containers()) {
    try {
      recover_container(c);
    } catch (const std::exception& e) {
      dlog::error("recover container", {{"id", c->id()}, {"error", e.what()}});
    }
  }
  try {
    remove_orphans();
  } catch (const std::exception& e) {
    dlog::error("remove orphans", {{"error", e.what()}});
  }
  // The shared read-only root of every pause process: just the pause binary.
  std::string root = pause_rootfs();
  mkdir_p(root, 0755);
  for (const char* d : {"proc", "dev", "sys", "etc"}) mkdir_p(path_join(root, d), 0755);
  std::string pause_bin = locate_helper(cfg_.pause_binary, "runtime.pause");
  write_file_atomic(path_join(root, "pause"), read_file(pause_bin), 0755, false);
  dlog::info("runtime state recovered", {{"sandboxes", std::to_string(sandboxes().size())},
                                         {"containers", std::to_string(containers().size())}});
}

} // namespace berth::cri
