// Log rotation on real files in a temporary directory, and the image GC's choice.
#include <fcntl.h>
#include <sys/stat.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "agent/lib/image_gc.hpp"
#include "agent/lib/log_rotation.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  berth::UniqueFd fd;
  TempDir() {
    char tmpl[] = "/tmp/berthlet-rotate-XXXXXX";
    path = ::mkdtemp(tmpl);
    fd = berth::UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) { std::ofstream(path / name) << text; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string gunzip(const fs::path& p) {
  gzFile gz = gzopen(p.c_str(), "rb");
  std::string out, buf(4096, '\0');
  int n;
  while ((n = gzread(gz, buf.data(), buf.size())) > 0) out.append(buf.data(), n);
  gzclose(gz);
  return out;
}

auto at(int second) { return std::chrono::system_clock::from_time_t(1765090800 + second); } // 2025-12-07 07:00:00

} // namespace

TEST(LogRotation, RotatesKeepsMaxFilesAndCompressesAllButNewest) {
  TempDir d;
  LogRotationPolicy policy{10, 3};
  int reopens = 0;
  auto reopen = [&] { reopens++; };
  d.write("0.log", "short\n");
  EXPECT_FALSE(rotate_log(d.fd.get(), "0.log", policy, reopen, at(0))); // under the size
  for (int i = 1; i <= 4; i++) {
    d.write("0.log", fmt::format("round {} is long enough\n", i));
    EXPECT_TRUE(rotate_log(d.fd.get(), "0.log", policy, reopen, at(i)));
    d.write("0.log", "");
  }
  EXPECT_EQ(reopens, 4);
  // maxFiles 3: the current file, the newest rotated one (plain), one older (gzip).
  EXPECT_EQ(d.names(), (std::vector<std::string>{"0.log", "0.log.20251207-070003.gz", "0.log.20251207-070004"}));
  EXPECT_EQ(gunzip(d.path / "0.log.20251207-070003.gz"), "round 3 is long enough\n");
  // Twice in one second: no overwrite, the next round rotates.
  d.write("0.log", "round 5 is long enough\n");
  EXPECT_FALSE(rotate_log(d.fd.get(), "0.log", policy, reopen, at(4)));
}

TEST(LogRotation, FailedReopenRenamesBackAndLeftoversAreCleaned) {
  TempDir d;
  d.write("1.log", "0123456789abcdef\n");
  EXPECT_THROW(rotate_log(d.fd.get(), "1.log", {10, 5}, [] { berth::fail("container is not running"); }, at(0)),
               berth::Error);
  EXPECT_EQ(d.names(), std::vector<std::string>{"1.log"});
  // An interrupted compression: its .tmp, and a plain file whose .gz was complete.
  d.write("1.log.20251207-065900.tmp", "partial");
  d.write("1.log.20251207-065901", "x");
  d.write("1.log.20251207-065901.gz", "y");
  d.write("1.log.other", "not ours");
  clean_unused_logs(d.fd.get(), "1.log");
  EXPECT_EQ(d.names(), (std::vector<std::string>{"1.log", "1.log.20251207-065901.gz", "1.log.other"}));
  // A symlink in the log's place is refused, never followed; a vanished log is no error.
  fs::remove(d.path / "1.log");
  EXPECT_FALSE(rotate_log(d.fd.get(), "1.log", {10, 5}, [] {}, at(1)));
  fs::create_symlink("/etc/passwd", d.path / "1.log");
  EXPECT_THROW(rotate_log(d.fd.get(), "1.log", {1, 5}, [] {}, at(2)), berth::Error);
}

TEST(ImageGc, ThresholdsAsTheKubelet) {
  EXPECT_EQ(bytes_to_free(1000, 200, 85, 80), 0u);   // 80% used
  EXPECT_EQ(bytes_to_free(1000, 150, 85, 80), 50u);  // 85%: down to 80%
  EXPECT_EQ(bytes_to_free(1000, 0, 85, 80), 200u);
  EXPECT_EQ(bytes_to_free(1000, 0, 100, 80), 0u);    // 100 disables
  EXPECT_EQ(bytes_to_free(0, 0, 85, 80), 0u);
}

TEST(ImageGc, FreesUnusedOldEnoughLeastRecentlyUsedFirst) {
  auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  std::map<std::string, ImageRecord> r;
  r["used"] = {t0, t0 + 50min, 100, false, true, "used"};
  r["pinned"] = {t0, t0, 100, true, false, "pinned"};
  r["young"] = {t0 + 59min, t0 + 59min, 100, false, false, "young"};
  r["lru"] = {t0 + 1min, t0 + 10min, 100, false, false, "lru"};
  r["older-use"] = {t0 + 2min, t0 + 5min, 100, false, false, "older-use"};
  r["recent"] = {t0, t0 + 30min, 100, false, false, "recent"};
  auto now = t0 + 60min;
  EXPECT_EQ(images_to_free(r, 150, now, 2min), (std::vector<std::string>{"older-use", "lru"}));
  EXPECT_EQ(images_to_free(r, 10000, now, 2min), (std::vector<std::string>{"older-use", "lru", "recent"}));
  EXPECT_EQ(images_to_free(r, 10000, now, 0ms), (std::vector<std::string>{"older-use", "lru", "recent", "young"}));
  EXPECT_TRUE(images_to_free(r, 0, now, 2min).empty());
}
