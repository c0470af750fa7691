#include "ctl/lib/config_input.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace berth::ctl {
namespace {

// Configs nest a few levels; a deeper document is hostile (yaml-cpp recurses).
constexpr int kMaxDepth = 32;

// A YAML scalar as JSON: quoted scalars stay strings; plain ones become what they look
// like (ghodss/yaml's inference, which crictl uses): null, booleans, numbers, else strings.
nlohmann::json scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() + s.size() && errno == 0) return i;
  double d = std::strtod(s.c_str(), &end);
  if (end == s.c_str() + s.size()) return d;
  return s;
}

nlohmann::json yaml_to_json(const YAML::Node& n, int depth) {
  if (depth > kMaxDepth) throw std::runtime_error(fmt::format("nested deeper than {} levels", kMaxDepth));
  switch (n.Type()) {
  case YAML::NodeType::Map: {
    auto j = nlohmann::json::object();
    for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_to_json(kv.second, depth + 1);
    return j;
  }
  case YAML::NodeType::Sequence: {
    auto j = nlohmann::json::array();
    for (const auto& v : n) j.push_back(yaml_to_json(v, depth + 1));
    return j;
  }
  case YAML::NodeType::Scalar: return scalar(n);
  default: return nullptr;
  }
}

} // namespace

void parse_config(const std::string& text, const std::string& what, google::protobuf::Message& msg) {
  std::string json;
  auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    json = text;
  } else {
    try {
      json = yaml_to_json(YAML::Load(text), 0).dump();
    } catch (const YAML::Exception& e) {
      throw std::runtime_error(fmt::format("{}: not JSON or YAML: {}", what, e.what()));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{}: {}", what, e.what()));
    }
  }
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, &msg, opts);
  if (!st.ok())
    throw std::runtime_error(fmt::format("{}: not a valid {}: {}", what, msg.GetDescriptor()->name(),
                                         std::string(st.message())));
}

void load_config(const std::string& path, google::protobuf::Message& msg) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string text;
  text.resize(kMaxConfigFile + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigFile)
    throw std::runtime_error(fmt::format("{}: bigger than {} bytes", path, kMaxConfigFile));
  parse_config(text, path, msg);
}

} // namespace berth::ctl
