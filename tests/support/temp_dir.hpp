// A temporary directory for one test, removed with everything in it when the test ends.
// Removal never descends into a file system still mounted below it (a failed mount test
// must not empty the host's directories through a leftover bind mount).
#pragma once

#include <ftw.h>
#include <stdlib.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/fs.hpp"

namespace berth::test_support {

class TempDir {
public:
  explicit TempDir(std::string_view prefix = "berth-test", std::string_view base = "/tmp") {
    std::string tmpl = std::string(base) + "/" + std::string(prefix) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
  }
  ~TempDir() {
    ::nftw(path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p) < 0 ? 0 : 0; },
           32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_join(path_, name); }
  std::string operator/(std::string_view name) const { return file(name); }
  void put(std::string_view name, const std::string& text) const { write_file(file(name), text); }

private:
  std::string path_;
};

} // namespace berth::test_support
