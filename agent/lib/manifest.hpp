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

// Bounds on what one manifest (or config file) may be. A Pod is far smaller than any of
// them; they bound memory and time however a file is written (size, nesting, aliases).
constexpr size_t kMaxManifestBytes = 1 << 20;     // the file
constexpr size_t kMaxYamlDepth = 64;              // nesting of sequences and mappings
constexpr size_t kMaxYamlNodes = 200'000;         // nodes, each alias counted as often as it is used
constexpr size_t kMaxYamlDocuments = 16;          // "---" separated documents, empty ones included
constexpr size_t kMaxYamlScalarBytes = 4 << 20;   // bytes of keys and values, aliases counted likewise

// Converts YAML (a superset of JSON) to JSON: plain scalars become numbers, booleans
// or null as YAML 1.2's core schema reads them; quoted scalars stay strings. The
// document is measured against the bounds above before anything is built from it.
nlohmann::json yaml_to_json(const std::string& text);

// Reads a regular file of at most max bytes (opened non-blocking, checked with fstat, read
// no further than max + 1). Throws berth::Error naming the problem.
std::string read_bounded_file(const std::string& path, size_t max);

// Reads and validates one manifest. Throws berth::Error naming the file and the field.
Manifest load_manifest(const std::string& path, const std::string& node_name);
Manifest manifest_from_text(const std::string& path, const std::string& text, const std::string& node_name);

// Files in dir the kubelet would read: regular files (or symlinks to them), not
// starting with '.', no subdirectories. Sorted. A missing dir is empty.
std::vector<std::string> list_manifest_files(const std::string& dir);

} // namespace berth::agent
