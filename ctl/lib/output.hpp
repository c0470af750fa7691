// berthctl's output: tables aligned as Go's tabwriter aligns crictl's (columns padded to
// their widest cell plus 3 spaces, the last one unpadded), messages as JSON (protobuf's
// JSON names, every field printed, as crictl) or YAML (the same tree through yaml-cpp),
// and crictl's human units for sizes and ages.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

namespace berth::ctl {

enum class Format { table, json, yaml };
// "table", "json", "yaml" (crictl's -o values); throws std::invalid_argument otherwise.
Format parse_format(const std::string& s);

class Table {
public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;
  std::string str() const;

private:
  std::vector<std::vector<std::string>> rows_;
};

// A message as JSON, every field (defaults included), protobuf's lowerCamel names.
nlohmann::json to_json(const google::protobuf::Message& m);
// Prints `j` as indented JSON or as YAML, with a trailing newline.
void print_tree(std::ostream& out, const nlohmann::json& j, Format f);
std::string to_yaml(const nlohmann::json& j);
// A verbose status reply as crictl prints it: {"status": ..., <info key>: <value>...},
// each info value parsed when it is JSON.
void print_status(std::ostream& out, const google::protobuf::Message& status,
                  const google::protobuf::Map<std::string, std::string>& info, Format f);

// Docker's units.HumanSizeWithPrecision(n, 3), as crictl prints sizes: "1.24MB", "834kB".
std::string human_size(double bytes);
// Docker's units.HumanDuration(now - nanos) + " ago", as crictl's CREATED column.
std::string ago(int64_t unix_nanos);
// The first 13 characters of an id without "sha256:" (crictl's truncated ids).
std::string short_id(const std::string& id);
// RFC 3339 with nanoseconds in UTC, for unix nanoseconds.
std::string rfc3339(int64_t unix_nanos);

} // namespace berth::ctl
