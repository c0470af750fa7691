#include "agent/lib/sinks/file_sink.hpp"

#include <dirent.h>

#include <cerrno>
#include <set>
#include <unistd.h>

#include <fmt/format.h>

#include "agent/lib/pod.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::agent {

std::string pod_file_name(const nlohmann::json& pod) {
  auto meta = pod.find("metadata");
  if (meta == pod.end() || !meta->is_object()) return "";
  auto ns = meta->value("namespace", ""), name = meta->value("name", "");
  if (!valid_dns1123_subdomain(ns) || !valid_dns1123_subdomain(name)) return "";
  return ns + "_" + name + ".json";
}

FileSink::FileSink(const SinkConfig& config) : dir_(config.directory) {
  // Temp files of an interrupted write are never read: they go at start.
  remove_pod_files([](const std::string& name) { return name.ends_with(".tmp"); });
}

void FileSink::remove_pod_files(const std::function<bool(const std::string&)>& pred) {
  DIR* d = ::opendir((dir_ + "/pods").c_str());
  if (!d) return;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (e->d_type == DT_REG && pred(name)) ::unlinkat(::dirfd(d), name.c_str(), 0);
  }
  ::closedir(d);
}

// The files of pods not in the set (removed while berthlet was down) go; the others stay
// until they are written again, so a reader never sees a running pod disappear.
Delivery FileSink::remove_stale(const nlohmann::json& pod_set) {
  std::set<std::string> keep;
  for (auto& p : pod_set.value("pods", nlohmann::json::array())) keep.insert(pod_file_name({{"metadata", p}}));
  remove_pod_files([&](const std::string& name) { return name.ends_with(".json") && !keep.count(name); });
  return Delivery::ok();
}

Delivery FileSink::deliver(const SinkItem& item) {
  if (item.kind == SinkItem::Kind::event) return Delivery::ok();
  if (item.kind == SinkItem::Kind::pod_set) return remove_stale(*item.object);
  std::string path;
  if (item.kind == SinkItem::Kind::node) {
    path = dir_ + "/node.json";
  } else {
    auto file = pod_file_name(*item.object);
    if (file.empty()) return Delivery::rejected("the pod has no valid namespace and name for a file name");
    path = dir_ + "/pods/" + file;
  }
  try {
    mkdir_p(dir_ + "/pods", 0755);
    if (item.kind == SinkItem::Kind::pod_deleted) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_errno("remove {}", path);
      return Delivery::ok();
    }
    write_file_atomic(path, item.object->dump() + "\n", 0644, true);
  } catch (const Error& e) {
    // ENOSPC, EROFS, EIO...: nothing half-written is left (write_file_atomic removes its
    // temp file); the runner retries with back-off and logs once.
    return Delivery::retry(e.code() == ENOSPC ? fmt::format("{} (no space left: will retry)", e.what()) : e.what());
  }
  return Delivery::ok();
}

} // namespace berth::agent
