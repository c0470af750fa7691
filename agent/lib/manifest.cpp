#include "agent/lib/manifest.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "agent/lib/hash.hpp"
#include "common/error.hpp"
#include "common/json.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"

namespace berth::agent {
namespace {

nlohmann::json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s; // quoted: always a string
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (auto i = parse_int(s); i) return *i;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x')
    if (auto h = parse_int(s.substr(2), 16); h) return *h;
  // A float must look like one: digits, optional dot and exponent (not "1Gi", not "inf").
  bool digit = false, ok = true;
  for (size_t i = 0; i < s.size() && ok; i++) {
    char c = s[i];
    if (std::isdigit(static_cast<unsigned char>(c))) digit = true;
    else if (!(c == '.' || c == 'e' || c == 'E' || ((c == '-' || c == '+') && (i == 0 || s[i - 1] == 'e' || s[i - 1] == 'E'))))
      ok = false;
  }
  if (ok && digit) {
    try {
      size_t used = 0;
      double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (...) {
    }
  }
  return s;
}

// What one document may expand to. YAML aliases share nodes, so a few hundred bytes of
// anchors and aliases can stand for billions of nodes ("billion laughs"); every alias is
// counted as often as it is used, and the document is measured before anything is built.
struct Budget {
  size_t nodes = 0, bytes = 0;
};

void measure(const YAML::Node& root) {
  struct Item {
    YAML::Node node;
    size_t depth;
  };
  Budget used;
  std::vector<Item> stack{{root, 1}};
  auto count = [&](const YAML::Node& n, size_t depth) {
    if (++used.nodes > kMaxYamlNodes)
      fail("line {}: the document expands to more than {} nodes (YAML aliases?)", n.Mark().line + 1, kMaxYamlNodes);
    if (depth > kMaxYamlDepth)
      fail("line {}: nested deeper than {} levels", n.Mark().line + 1, kMaxYamlDepth);
    if (n.IsScalar()) {
      used.bytes += n.Scalar().size();
      if (used.bytes > kMaxYamlScalarBytes)
        fail("line {}: the document expands to more than {} bytes of strings (YAML aliases?)", n.Mark().line + 1,
             kMaxYamlScalarBytes);
    }
  };
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    count(it.node, it.depth);
    if (it.node.IsSequence()) {
      for (const auto& child : it.node) stack.push_back({child, it.depth + 1});
    } else if (it.node.IsMap()) {
      for (const auto& kv : it.node) {
        if (!kv.first.IsScalar()) fail("line {}: mapping keys must be scalars", kv.first.Mark().line + 1);
        count(kv.first, it.depth + 1);
        stack.push_back({kv.second, it.depth + 1});
      }
    }
  }
}

// Recursion is bounded: measure() has checked the depth.
nlohmann::json node_to_json(const YAML::Node& n) {
  switch (n.Type()) {
  case YAML::NodeType::Null:
  case YAML::NodeType::Undefined: return nullptr;
  case YAML::NodeType::Scalar: return scalar_to_json(n);
  case YAML::NodeType::Sequence: {
    auto arr = nlohmann::json::array();
    for (const auto& item : n) arr.push_back(node_to_json(item));
    return arr;
  }
  case YAML::NodeType::Map: {
    auto obj = nlohmann::json::object();
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) fail("line {}: mapping keys must be scalars", kv.first.Mark().line + 1);
      obj[kv.first.Scalar()] = node_to_json(kv.second);
    }
    return obj;
  }
  }
  return nullptr;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

} // namespace

namespace {

// Counts documents as the parser sees them, without building nodes.
struct DocumentCounter : YAML::EventHandler {
  size_t documents = 0;
  void OnDocumentStart(const YAML::Mark&) override { ++documents; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// yaml-cpp 0.7's LoadAll never ends on a stray flow separator after a document ("," or
// "{a: b},": each round yields one more empty document) and grows until the OOM killer
// comes. The documents are counted first, with a cap, so LoadAll only sees text whose
// parse ends.
void check_document_count(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  while (parser.HandleNextDocument(counter))
    if (counter.documents > kMaxYamlDocuments)
      fail("more than {} YAML documents (stray ',' or ']' after the document?): a manifest holds one Pod",
           kMaxYamlDocuments);
}

} // namespace

nlohmann::json yaml_to_json(const std::string& text) {
  std::vector<YAML::Node> docs;
  try {
    check_document_count(text);
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    fail("invalid YAML at line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  // "---" separators around a single document are common; empty documents do not count.
  std::vector<YAML::Node> real;
  for (auto& d : docs)
    if (!d.IsNull()) real.push_back(d);
  if (real.empty()) fail("empty manifest");
  if (real.size() > 1) fail("{} documents in one file: a manifest holds one Pod", real.size());
  measure(real[0]);
  return node_to_json(real[0]);
}

std::string read_bounded_file(const std::string& path, size_t max) {
  // O_NONBLOCK: a FIFO swapped in after the directory scan must not block the event loop.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) fail_errno("open");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail_errno("stat");
  if (!S_ISREG(st.st_mode)) fail("not a regular file");
  auto too_big = [&](uint64_t size) {
    fail("{} bytes: files larger than {} bytes ({} MiB) are refused", size, max, max >> 20);
  };
  if (static_cast<uint64_t>(st.st_size) > max) too_big(static_cast<uint64_t>(st.st_size));
  std::string out(max + 1, '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("read");
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > max) too_big(got); // grew after the stat
  out.resize(got);
  return out;
}

Manifest manifest_from_text(const std::string& path, const std::string& text, const std::string& node_name) {
  return with_context(path, [&] {
    Manifest m;
    m.path = path;
    if (auto bad = first_invalid_utf8(text)) fail("not valid UTF-8 (byte {})", *bad);
    m.source = yaml_to_json(text);
    m.pod = parse_pod(m.source);
    // The kubelet hashes the decoded object; the canonical JSON form is its equivalent:
    // comments, key order and whitespace do not change the UID.
    if (m.pod.uid.empty())
      m.pod.uid = md5_hex(fmt::format("host:{}file:{}{}", node_name, path, m.source.dump()));
    m.pod.name = m.pod.name + "-" + lower(node_name);
    if (m.pod.name.size() > 253) fail("metadata.name: {:?} is too long with the node name", m.pod.name);
    m.full_name = m.pod.namespace_ + "/" + m.pod.name;
    m.pod.annotations["kubernetes.io/config.source"] = "file";
    m.pod.annotations["kubernetes.io/config.hash"] = m.pod.uid;
    return m;
  });
}

Manifest load_manifest(const std::string& path, const std::string& node_name) {
  std::string text = with_context(path, [&] { return read_bounded_file(path, kMaxManifestBytes); });
  return manifest_from_text(path, text, node_name);
}

std::vector<std::string> list_manifest_files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    fail_errno("open manifest directory {}", dir);
  }
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string p = path_join(dir, e->d_name);
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back(p);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace berth::agent
