// Static pod manifests: one Pod per file, YAML or JSON, in watched directories.
// Identity follows the kubelet's file source: name <name>-<nodename>, namespace
// "default" when empty, UID = md5(host, file path, content) unless the manifest
// sets one, so an edited file is a new pod and an unchanged one keeps its pod.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/lib/pod.hpp"

namespace berth::agent {

struct Manifest {
  std::string path;
  Pod pod;               // pod.name is the full name (<name>-<nodename>), pod.uid set
  std::string full_name; // <namespace>/<name>, for logs
  nlohmann::json source; // the document as read (for /pods)
};

// Converts YAML (a superset of JSON) to JSON: plain scalars become numbers, booleans
// or null as YAML 1.2's core schema reads them; quoted scalars stay strings.
nlohmann::json yaml_to_json(const std::string& text);

// Reads and validates one manifest. Throws berth::Error naming the file and the field.
Manifest load_manifest(const std::string& path, const std::string& node_name);
Manifest manifest_from_text(const std::string& path, const std::string& text, const std::string& node_name);

// Files in dir the kubelet would read: regular files (or symlinks to them), not
// starting with '.', no subdirectories. Sorted. A missing dir is empty.
std::vector<std::string> list_manifest_files(const std::string& dir);

} // namespace berth::agent
