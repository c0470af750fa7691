#include "cri/server/runtime.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/subprocess.hpp"
#include "common/daemon_log.hpp"
#include "cri/server/grpc_status.hpp"

namespace berth::cri {
namespace {

using runtime::v1::ContainerEventResponse;
using runtime::v1::ContainerEventType;

NetworkSettings network_settings(const Config& cfg);

} // namespace

// A helper binary: an absolute path as configured, else next to berthd, in
// <prefix>/libexec/berth, then in PATH.
std::string locate_helper(const std::string& name, const char* what) {
  if (name.find('/') != std::string::npos) return with_context(what, [&] { return find_executable(name, {}); });
  std::string dir = executable_dir();
  std::vector<std::string> dirs = {dir, dir + "/../libexec/berth", dir + "/../lib/berth"};
  for (auto& d : path_dirs()) dirs.push_back(d);
  return with_context(what, [&] { return find_executable(name, dirs); });
}

namespace {

NetworkSettings network_settings(const Config& cfg) {
  NetworkSettings n;
  n.conf_dir = cfg.cni_conf_dir;
  n.bin_dirs = cfg.cni_bin_dirs;
  n.cache_dir = cfg.cni_cache_dir;
  n.timeout = std::chrono::seconds(cfg.cni_timeout_s);
  return n;
}

template <typename Map>
typename Map::mapped_type lookup(const Map& m, const std::string& key) {
  if (key.empty()) return nullptr;
  if (auto it = m.find(key); it != m.end()) return it->second;
  // A unique prefix, as crictl users type them.
  typename Map::mapped_type found;
  for (auto& [id, v] : m) {
    if (id.compare(0, key.size(), key) != 0) continue;
    if (found) fail_code(EINVAL, "id prefix \"{}\" is ambiguous", key);
    found = v;
  }
  return found;
}

} // namespace

std::string new_id() {
  unsigned char b[32];
  for (size_t got = 0; got < sizeof b;) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("getrandom");
    got += static_cast<size_t>(n);
  }
  std::string s;
  for (unsigned char c : b) s += fmt::format("{:02x}", c);
  return s;
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

Runtime::Runtime(const Config& cfg, image::ImageStore& images)
    : cfg_(cfg), images_(images), network_(network_settings(cfg)), streams_(cfg.stream) {
  mkdir_p(cfg_.state_dir, 0711);
  mkdir_p(path_join(cfg_.state_dir, "sandboxes"), 0711);
  mkdir_p(path_join(cfg_.state_dir, "containers"), 0711);
  records_ = with_context("open runtime records", [&] { return RecordStore::open(path_join(cfg_.root, "runtime.db")); });
  shim_.binary = locate_helper(cfg_.shim_binary, "runtime.shim");
  shim_.state_root = path_join(cfg_.state_dir, "shims");
  shim_.exit_dir = path_join(cfg_.state_dir, "exits");
  shim_.timeout = std::chrono::seconds(cfg_.start_timeout_s);
  mkdir_p(shim_.state_root, 0700);
  mkdir_p(shim_.exit_dir, 0700);
  spec_opts_.cgroup_driver = cfg_.cgroup_driver;
  spec_opts_.restrict_oom_score_adj = cfg_.restrict_oom_score_adj;
  spec_opts_.seccomp_profile_root = cfg_.seccomp_profile_root;
  for (const auto& h : cfg_.handlers) {
    RuntimeHandler rh;
    rh.name = h.name;
    rh.binary = locate_helper(h.binary, fmt::format("runtime.handlers.\"{}\".binary", h.name).c_str());
    rh.args = h.args;
    rh.root = h.root.empty() ? path_join(cfg_.state_dir, "runtime/" + h.name) : h.root;
    rh.systemd_cgroup = cfg_.cgroup_driver == CgroupDriver::systemd;
    handlers_.emplace(h.name, OciRuntime(rh));
  }
}

Runtime::~Runtime() { exits_.reset(); }

const OciRuntime& Runtime::handler(const std::string& name) const {
  auto it = handlers_.find(name.empty() ? cfg_.default_handler : name);
  if (it == handlers_.end())
    fail_code(EINVAL, "runtime_handler: no runtime handler \"{}\" is configured (have: {})", name,
              fmt::join(handler_names(), ", "));
  return it->second;
}

std::vector<std::string> Runtime::handler_names() const {
  std::vector<std::string> out;
  for (auto& [n, _] : handlers_) out.push_back(n);
  return out;
}

std::string Runtime::sandbox_dir(const std::string& id) const { return path_join(cfg_.state_dir, "sandboxes/" + id); }
std::string Runtime::bundle_dir(const std::string& id) const { return path_join(cfg_.state_dir, "containers/" + id); }
std::string Runtime::pause_rootfs() const { return path_join(cfg_.state_dir, "pause"); }

SandboxPtr Runtime::find_sandbox(const std::string& id) const {
  std::shared_lock lk(index_mu_);
  return lookup(sandboxes_, id);
}

ContainerPtr Runtime::find_container(const std::string& id) const {
  std::shared_lock lk(index_mu_);
  return lookup(containers_, id);
}

SandboxPtr Runtime::sandbox(const std::string& id) const {
  if (id.empty()) fail_code(EINVAL, "pod_sandbox_id: must not be empty");
  auto s = find_sandbox(id);
  if (!s) fail_code(ENOENT, "pod sandbox \"{}\" not found", id.substr(0, 128));
  return s;
}

ContainerPtr Runtime::container(const std::string& id) const {
  if (id.empty()) fail_code(EINVAL, "container_id: must not be empty");
  auto c = find_container(id);
  if (!c) fail_code(ENOENT, "container \"{}\" not found", id.substr(0, 128));
  return c;
}

std::vector<SandboxPtr> Runtime::sandboxes() const {
  std::shared_lock lk(index_mu_);
  std::vector<SandboxPtr> out;
  out.reserve(sandboxes_.size());
  for (auto& [_, s] : sandboxes_) out.push_back(s);
  return out;
}

std::vector<ContainerPtr> Runtime::containers() const {
  std::shared_lock lk(index_mu_);
  std::vector<ContainerPtr> out;
  out.reserve(containers_.size());
  for (auto& [_, c] : containers_) out.push_back(c);
  return out;
}

std::vector<ContainerPtr> Runtime::containers_of(const std::string& sandbox_id) const {
  std::vector<ContainerPtr> out;
  for (auto& c : containers()) {
    std::lock_guard lk(c->mu);
    if (c->rec.sandbox_id == sandbox_id) out.push_back(c);
  }
  return out;
}

namespace {
template <typename Obj, typename Map>
void add_object(const std::shared_ptr<Obj>& o, Map& objects, std::unordered_map<std::string, std::string>& names,
                const char* kind) {
  const std::string& name = o->rec.name;
  if (auto it = names.find(name); it != names.end())
    fail_code(EEXIST, "the {} name \"{}\" is reserved for {}", kind, name, it->second);
  names.emplace(name, o->rec.id);
  objects.emplace(o->rec.id, o);
}
} // namespace

void Runtime::add(const SandboxPtr& s) {
  {
    std::unique_lock lk(index_mu_);
    add_object(s, sandboxes_, names_, "pod sandbox");
  }
  try {
    persist(*s);
  } catch (...) {
    std::unique_lock lk(index_mu_);
    names_.erase(s->rec.name);
    sandboxes_.erase(s->rec.id);
    throw;
  }
}

void Runtime::add(const ContainerPtr& c) {
  {
    std::unique_lock lk(index_mu_);
    add_object(c, containers_, names_, "container");
  }
  try {
    persist(*c);
  } catch (...) {
    std::unique_lock lk(index_mu_);
    names_.erase(c->rec.name);
    containers_.erase(c->rec.id);
    throw;
  }
}

void Runtime::drop(const SandboxPtr& s) {
  {
    std::lock_guard lk(s->mu);
    s->removed = true;
    records_->remove_sandbox(s->rec.id);
  }
  std::unique_lock lk(index_mu_);
  names_.erase(s->rec.name);
  sandboxes_.erase(s->rec.id);
}

void Runtime::drop(const ContainerPtr& c) {
  {
    std::lock_guard lk(c->mu);
    c->removed = true;
    records_->remove_container(c->rec.id);
  }
  std::unique_lock lk(index_mu_);
  names_.erase(c->rec.name);
  containers_.erase(c->rec.id);
}

// Under the object's lock, so a write can never land after drop() removed the row.
void Runtime::persist(const Sandbox& s) {
  std::lock_guard lk(s.mu);
  if (!s.removed) records_->put(s.rec);
}

void Runtime::persist(const Container& c) {
  std::lock_guard lk(c.mu);
  if (!c.removed) records_->put(c.rec);
}

void Runtime::emit(ContainerEventType type, const std::string& container_id, const std::string& sandbox_id) {
  if (!events_.has_subscribers()) return;
  ContainerEventResponse ev;
  ev.set_container_id(container_id);
  ev.set_container_event_type(type);
  ev.set_created_at(now_ns());
  if (auto s = find_sandbox(sandbox_id)) {
    std::lock_guard lk(s->mu);
    fill(*s, ev.mutable_pod_sandbox_status());
  }
  for (auto& c : containers_of(sandbox_id)) {
    std::lock_guard lk(c->mu);
    fill(*c, ev.add_containers_statuses());
  }
  events_.publish(ev);
}

void Runtime::apply_exit(Container& c, const ExitRecord& e, const char* reason_if_unknown) {
  c.rec.phase = ContainerPhase::exited;
  c.rec.exit_code = e.exit_code;
  c.rec.finished_ns = e.exited_ns ? e.exited_ns : now_ns();
  c.rec.oom_killed = e.oom_killed;
  c.rec.pid = 0;
  if (reason_if_unknown) c.rec.reason = reason_if_unknown;
  else if (e.oom_killed) c.rec.reason = "OOMKilled";
  else c.rec.reason = e.exit_code == 0 ? "Completed" : "Error";
  c.exited.notify_all();
}

void Runtime::on_exit(const std::string& id) {
  if (id.empty()) {
    // inotify lost events: look at every container that should still be running.
    for (auto& c : containers()) {
      bool running;
      {
        std::lock_guard lk(c->mu);
        running = c->rec.phase == ContainerPhase::running;
      }
      if (running && path_exists(path_join(shim_.exit_dir, c->id()))) on_exit(c->id());
    }
    for (auto& s : sandboxes())
      if (path_exists(path_join(shim_.exit_dir, s->id()))) on_exit(s->id());
    return;
  }
  auto exit = read_exit_record(shim_.exit_dir, id);
  if (!exit) return;
  if (auto c = find_container(id); c && c->id() == id) {
    std::string sandbox_id;
    {
      std::lock_guard lk(c->mu);
      if (c->rec.phase == ContainerPhase::exited) return;
      apply_exit(*c, *exit);
      sandbox_id = c->rec.sandbox_id;
    }
    persist(*c);
    dlog::info("container exited", {{"id", id}, {"exit_code", std::to_string(exit->exit_code)}});
    emit(runtime::v1::CONTAINER_STOPPED_EVENT, id, sandbox_id);
    return;
  }
  if (auto s = find_sandbox(id); s && s->id() == id) {
    {
      std::lock_guard lk(s->mu);
      if (s->pause_exited) return;
      s->pause_exited = true;
    }
    dlog::info("pod's pause process exited", {{"sandbox", id}, {"exit_code", std::to_string(exit->exit_code)}});
    emit(runtime::v1::CONTAINER_STOPPED_EVENT, id, id);
  }
}

bool Runtime::responsive(std::chrono::milliseconds within) const {
  auto deadline = std::chrono::steady_clock::now() + within;
  do {
    if (index_mu_.try_lock_shared()) {
      index_mu_.unlock_shared();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

} // namespace berth::cri
