// Typed, path-aware access to JSON documents: every error names the field it is
// about ("process.args[0]: expected a string, got number").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth {

using json = nlohmann::json;

// The nesting depth of a JSON text ([ and { outside strings), scanning no further than
// the first point where it exceeds `limit` (then limit + 1). Linear, no recursion; the
// text need not be valid JSON.
size_t json_depth(std::string_view text, size_t limit);

// Parses a JSON document from an untrusted source (a registry, an API server): the depth
// is checked before parsing (nlohmann's parser is iterative, but copying, comparing and
// dumping a document recurse). Throws berth::Error (EINVAL) naming `what` when it is
// nested deeper than max_depth or is not JSON.
json parse_untrusted_json(std::string_view text, std::string_view what, size_t max_depth);
nlohmann::ordered_json parse_untrusted_ordered_json(std::string_view text, std::string_view what, size_t max_depth);

class JsonView {
public:
  JsonView(const json& j, std::string path) : j_(&j), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const json& raw() const { return *j_; }
  bool is_null() const { return j_->is_null(); }
  bool present() const { return !j_->is_null(); }

  // Member access; a missing member is a null view.
  JsonView operator[](std::string_view key) const;
  JsonView at(size_t i) const;
  size_t size() const { return j_->is_array() || j_->is_object() ? j_->size() : 0; }

  std::string as_string() const;
  int64_t as_int() const;
  uint64_t as_uint() const;
  uint32_t as_u32() const;
  int32_t as_i32() const;
  bool as_bool() const;
  std::vector<std::string> as_string_list() const;

  std::optional<std::string> opt_string(std::string_view key) const;
  std::optional<int64_t> opt_int(std::string_view key) const;
  std::optional<uint64_t> opt_uint(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::vector<std::string> string_list(std::string_view key) const; // empty when absent

  // Iterates an array (absent = no iterations). Fails if present and not an array.
  void each(const std::function<void(const JsonView&)>& fn) const;
  // Iterates an object's members (absent = no iterations).
  void each_member(const std::function<void(const std::string&, const JsonView&)>& fn) const;

  void expect_object() const;
  [[noreturn]] void bad(std::string_view what) const;

private:
  const json* j_;
  std::string path_;
};

const char* json_type_name(const json& j);

// The offset of the first byte that is not well-formed UTF-8 (overlong forms, surrogates
// and code points past U+10FFFF included), or nullopt. JSON text must be UTF-8, and
// nlohmann::json throws a type_error when it dumps a string that is not.
std::optional<size_t> first_invalid_utf8(std::string_view s);

} // namespace berth
