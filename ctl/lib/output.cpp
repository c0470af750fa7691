#include "ctl/lib/output.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

namespace berth::ctl {

Format parse_format(const std::string& s) {
  if (s == "table" || s.empty()) return Format::table;
  if (s == "json") return Format::json;
  if (s == "yaml") return Format::yaml;
  throw std::invalid_argument(fmt::format("unsupported output format {:?}: json, yaml or table", s));
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.resize(i + 1, 0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 3, ' ');
    }
    out << line << '\n';
  }
}

std::string Table::str() const {
  std::ostringstream s;
  print(s);
  return s.str();
}

nlohmann::json to_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string s;
  auto st = google::protobuf::util::MessageToJsonString(m, &s, opts);
  if (!st.ok()) throw std::runtime_error("cannot render " + m.GetTypeName() + " as JSON: " + st.ToString());
  return nlohmann::json::parse(s);
}

namespace {

bool looks_typed(const std::string& s) {
  static const char* words[] = {"", "true", "false", "yes", "no", "on", "off", "null", "~", "True", "False", "Null"};
  for (const char* w : words)
    if (s == w) return true;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

void emit(YAML::Emitter& e, const nlohmann::json& j) {
  switch (j.type()) {
  case nlohmann::json::value_t::object:
    e << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      e << YAML::Key << it.key() << YAML::Value;
      emit(e, it.value());
    }
    e << YAML::EndMap;
    break;
  case nlohmann::json::value_t::array:
    e << YAML::BeginSeq;
    for (const auto& v : j) emit(e, v);
    e << YAML::EndSeq;
    break;
  case nlohmann::json::value_t::string:
    // Quoted when YAML would read it back as another type ("123", "true", "").
    if (const auto& s = j.get_ref<const std::string&>(); looks_typed(s)) e << YAML::DoubleQuoted << s;
    else e << s;
    break;
  case nlohmann::json::value_t::null: e << YAML::Null; break;
  default: e << j.dump(); break;
  }
}

} // namespace

std::string to_yaml(const nlohmann::json& j) {
  YAML::Emitter e;
  emit(e, j);
  return std::string(e.c_str()) + "\n";
}

void print_tree(std::ostream& out, const nlohmann::json& j, Format f) {
  if (f == Format::yaml) out << to_yaml(j);
  else out << j.dump(2) << '\n';
}

void print_status(std::ostream& out, const google::protobuf::Message& status,
                  const google::protobuf::Map<std::string, std::string>& info, Format f) {
  nlohmann::json j = {{"status", to_json(status)}};
  for (const auto& [k, v] : info) {
    auto parsed = nlohmann::json::parse(v, nullptr, false);
    j[k] = parsed.is_discarded() ? nlohmann::json(v) : parsed;
  }
  print_tree(out, j, f);
}

std::string human_size(double size) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  size_t i = 0;
  while (size >= 1000 && i + 1 < std::size(units)) {
    size /= 1000;
    ++i;
  }
  // Go's %.3g: 3 significant digits, no trailing zeros.
  return fmt::format("{:.3g}{}", size, units[i]);
}

std::string ago(int64_t unix_nanos) {
  using namespace std::chrono;
  auto now = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  double secs = static_cast<double>(now - unix_nanos) / 1e9;
  std::string d;
  auto n = [](double v) { return static_cast<long long>(v); };
  if (secs < 1) d = "Less than a second";
  else if (n(secs) == 1) d = "1 second";
  else if (secs < 60) d = fmt::format("{} seconds", n(secs));
  else if (double m = secs / 60; n(m) == 1) d = "About a minute";
  else if (m < 60) d = fmt::format("{} minutes", n(m));
  else if (double h = std::round(m / 60); n(h) == 1) d = "About an hour";
  else if (h < 48) d = fmt::format("{} hours", n(h));
  else if (h < 24 * 7 * 2) d = fmt::format("{} days", n(h / 24));
  else if (h < 24 * 30 * 2) d = fmt::format("{} weeks", n(h / 24 / 7));
  else if (h < 24 * 365 * 2) d = fmt::format("{} months", n(h / 24 / 30));
  else d = fmt::format("{} years", n(h / 24 / 365));
  return d + " ago";
}

std::string short_id(const std::string& id) {
  std::string s = id.rfind("sha256:", 0) == 0 ? id.substr(7) : id;
  return s.substr(0, 13);
}

std::string rfc3339(int64_t unix_nanos) {
  time_t secs = static_cast<time_t>(unix_nanos / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:09d}Z", buf, unix_nanos % 1000000000);
}

} // namespace berth::ctl
