// CRI log records: line splitting, partial records, "\r\n", end of stream.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/fs.hpp"
#include "shim/lib/cri_log.hpp"

using namespace berth::shim;

namespace {

struct Record {
  std::string stream, tag, message;
  bool operator==(const Record& o) const { return stream == o.stream && tag == o.tag && message == o.message; }
};
std::ostream& operator<<(std::ostream& os, const Record& r) {
  return os << r.stream << " " << r.tag << " [" << r.message << "]";
}

class CriLogTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shim-log-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    path_ = tmpl;
    file_ = std::make_unique<LogFile>(path_);
    writer_ = std::make_unique<RecordWriter>(*file_);
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  void feed(LineSplitter& s, std::string_view data) {
    struct timespec ts {1700000000, 5};
    writer_->begin(s.stream(), ts);
    s.feed(data, *writer_);
  }
  void finish(LineSplitter& s) {
    struct timespec ts {1700000000, 5};
    writer_->begin(s.stream(), ts);
    s.finish(*writer_);
  }
  std::vector<Record> records() {
    std::vector<Record> out;
    std::string text = berth::read_file(path_);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      // "<ts> <stream> <tag> <message>"
      size_t a = line.find(' '), b = line.find(' ', a + 1), c = line.find(' ', b + 1);
      EXPECT_EQ(line.substr(0, a), "2023-11-14T22:13:20.000000005Z");
      out.push_back({line.substr(a + 1, b - a - 1), line.substr(b + 1, c - b - 1), line.substr(c + 1)});
    }
    return out;
  }

  std::string path_;
  std::unique_ptr<LogFile> file_;
  std::unique_ptr<RecordWriter> writer_;
};

TEST_F(CriLogTest, FullLinesAndStreams) {
  LineSplitter out(Stream::out, 16), err(Stream::err, 16);
  feed(out, "hello\nworld\n");
  feed(err, "oops\n");
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "hello"}, {"stdout", "F", "world"}, {"stderr", "F", "oops"}}));
}

TEST_F(CriLogTest, LineAcrossReads) {
  LineSplitter out(Stream::out, 16);
  feed(out, "hel");
  feed(out, "lo wo");
  feed(out, "rld\nnext");
  feed(out, "\n");
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "hello world"}, {"stdout", "F", "next"}}));
}

TEST_F(CriLogTest, LongLinesSplitIntoPartials) {
  LineSplitter out(Stream::out, 4);
  feed(out, "abcd\n");       // exactly the limit: one full record
  feed(out, "abcdefghij\n"); // 10 bytes: P abcd, P efgh, F ij
  feed(out, "ab");
  feed(out, "cdef");         // crosses the limit while unterminated
  feed(out, "\n");
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "abcd"},
                                            {"stdout", "P", "abcd"},
                                            {"stdout", "P", "efgh"},
                                            {"stdout", "F", "ij"},
                                            {"stdout", "P", "abcd"},
                                            {"stdout", "F", "ef"}}));
}

TEST_F(CriLogTest, CarriageReturnBeforeNewlineIsDropped) {
  LineSplitter out(Stream::out, 8);
  feed(out, "tty\r\n");
  feed(out, "split\r");
  feed(out, "\nmid\rdle\n");
  feed(out, "a\r");
  feed(out, "b\n");
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "tty"},
                                            {"stdout", "F", "split"},
                                            {"stdout", "F", "mid\rdle"},
                                            {"stdout", "F", "a\rb"}}));
}

TEST_F(CriLogTest, HeldCarriageReturnAtTheLimit) {
  LineSplitter out(Stream::out, 4);
  feed(out, "abcd\r"); // 4 bytes + a "\r" that may end the line
  feed(out, "\n");
  feed(out, "wxyz\r");
  feed(out, "k\n");    // the "\r" was content: 6 bytes
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "abcd"}, {"stdout", "P", "wxyz"}, {"stdout", "F", "\rk"}}));
}

TEST_F(CriLogTest, EndOfStreamLeavesAPartial) {
  LineSplitter out(Stream::out, 16);
  feed(out, "done\nno newline");
  finish(out);
  finish(out); // nothing left: no record
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "done"}, {"stdout", "P", "no newline"}}));
}

TEST_F(CriLogTest, EmptyLines) {
  LineSplitter out(Stream::out, 16);
  feed(out, "\n\n");
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", ""}, {"stdout", "F", ""}}));
}

TEST_F(CriLogTest, ManyRecordsInOneRead) {
  LineSplitter out(Stream::out, 16);
  std::string data;
  for (int i = 0; i < 3000; i++) data += std::to_string(i) + "\n"; // more records than one writev holds
  feed(out, data);
  auto recs = records();
  ASSERT_EQ(recs.size(), 3000u);
  for (int i = 0; i < 3000; i++) EXPECT_EQ(recs[static_cast<size_t>(i)].message, std::to_string(i));
}

TEST_F(CriLogTest, ReopenKeepsThePartialLine) {
  LineSplitter out(Stream::out, 16);
  feed(out, "one\ntw");
  std::string rotated = path_ + ".1";
  ASSERT_EQ(::rename(path_.c_str(), rotated.c_str()), 0);
  file_->reopen();
  feed(out, "o\n");
  std::string old_text = berth::read_file(rotated);
  ::unlink(rotated.c_str());
  EXPECT_NE(old_text.find(" stdout F one\n"), std::string::npos);
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "two"}}));
}

TEST_F(CriLogTest, WriteErrorsAreCountedNotFatal) {
  LogFile full("/dev/full");
  RecordWriter w(full);
  LineSplitter out(Stream::out, 16);
  struct timespec ts {0, 0};
  w.begin(Stream::out, ts);
  out.feed("lost\n", w);
  EXPECT_EQ(full.last_error(), ENOSPC);
  EXPECT_EQ(full.dropped_bytes(), std::string("1970-01-01T00:00:00.000000000Z stdout F lost\n").size());
}

} // namespace

namespace {
TEST_F(CriLogTest, ShortWritesNeverLeaveATornRecord) {
  // RLIMIT_FSIZE cuts writes short like a full disk does (EFBIG instead of ENOSPC).
  struct rlimit old;
  ::getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = {100, old.rlim_max};
  ::setrlimit(RLIMIT_FSIZE, &small);
  LineSplitter out(Stream::out, 16);
  feed(out, "first\nsecond\nthird\n"); // 3 records of 39-40 bytes: the third is cut at 100
  feed(out, "fourth\n");
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(records(), (std::vector<Record>{{"stdout", "F", "first"}, {"stdout", "F", "second"}}));
  EXPECT_GT(file_->dropped_bytes(), 0u);
  feed(out, "fifth\n"); // room again: appended after the last whole record
  EXPECT_EQ(records().back(), (Record{"stdout", "F", "fifth"}));
}
} // namespace
