// --name and --namespace filters: regular expressions, as crictl's (Go's RE2 syntax).
// RE2 (linked already, through gRPC) matches in linear time without recursion: the names
// come from the endpoint, which is not trusted, so std::regex's per-character recursion
// must not run over them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <re2/re2.h>

#include "common/error.hpp"

namespace berth::ctl {

class NameFilter {
public:
  // An empty pattern matches everything. Throws naming the flag for a bad expression.
  NameFilter(const std::string& pattern, std::string_view flag) {
    if (pattern.empty()) return;
    re_ = std::make_unique<re2::RE2>(pattern, re2::RE2::Quiet);
    if (!re_->ok()) fail("{} {:?}: not a regular expression: {}", flag, pattern, re_->error());
  }
  bool matches(std::string_view name) const { return !re_ || re2::RE2::PartialMatch(name, *re_); }

private:
  std::unique_ptr<re2::RE2> re_;
};

} // namespace berth::ctl
