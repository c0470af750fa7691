// What every Berth binary prints for --version: the release and the commit it was built
// from (scripts/git-commit.sh, through meson's vcs_tag), so a bug report names its build.
#pragma once

#include <string>
#include <string_view>

namespace berth {

extern const char kGitCommit[]; // "8f49088679e0", "...-dirty", or "unknown"

// "PROGRAM version 0.1.0\ncommit: 8f49088679e0\n"
std::string version_text(std::string_view program);

} // namespace berth
