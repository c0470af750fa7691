#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"

using namespace berth;

namespace {
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST(JsonView, NamesTheFieldOnTypeErrors) {
  json doc = json::parse(R"({"process": {"args": ["sh", 3], "user": {"uid": -1}}})");
  JsonView root(doc, "");
  EXPECT_EQ(error_of([&] { root["process"]["args"].as_string_list(); }),
            "process.args[1]: expected a string, got number");
  EXPECT_EQ(error_of([&] { root["process"]["user"]["uid"].as_u32(); }),
            "process.user.uid: expected a non-negative integer, got -1");
  EXPECT_EQ(error_of([&] { root["process"]["args"]["x"].as_string(); }), "process.args: expected an object, got array");
}

TEST(JsonView, MissingMembersAreNull) {
  json doc = json::parse(R"({"a": {}})");
  JsonView root(doc, "");
  EXPECT_TRUE(root["a"]["b"]["c"].is_null());
  EXPECT_FALSE(root.opt_string("nope").has_value());
  EXPECT_TRUE(root.string_list("nope").empty());
  int n = 0;
  root["missing"].each([&](const JsonView&) { n++; });
  EXPECT_EQ(n, 0);
}

TEST(JsonView, RangeChecks) {
  json doc = json::parse(R"({"big": 4294967296, "neg": -5, "f": 1.5})");
  JsonView root(doc, "");
  EXPECT_NE(error_of([&] { root["big"].as_u32(); }).find("out of range"), std::string::npos);
  EXPECT_EQ(root["neg"].as_int(), -5);
  EXPECT_EQ(error_of([&] { root["f"].as_int(); }), "f: expected an integer, got number (float)");
}

TEST(Error, CarriesErrnoAndContext) {
  Error e(ENOENT, "open /x");
  e.wrap("load config");
  EXPECT_EQ(std::string(e.what()), "load config: open /x: no such file or directory");
  EXPECT_EQ(e.code(), ENOENT);
  EXPECT_EQ(e.message(), "load config: open /x");
}

TEST(Strings, SplitTrimParse) {
  EXPECT_EQ(split("a::b:", ':'), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split("a::b", ':', false), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(trim("  x \n"), "x");
  EXPECT_EQ(parse_int("-12"), -12);
  EXPECT_FALSE(parse_int("12x").has_value());
  EXPECT_FALSE(parse_uint("-1").has_value());
  EXPECT_EQ(path_join("/a/", "/b"), "/a/b");
  EXPECT_EQ(path_join("/", "b"), "/b");
}
