// Thin RAII over SQLite for the daemon's two databases (the image metadata and the
// runtime's records): a connection opened in WAL mode, prepared statements and
// transactions that roll back when an exception leaves their scope.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace berth::image {

// Opens `path` (creating it) as a serialized connection with WAL and synchronous=NORMAL:
// readers never block the writer; a process crash loses no committed transaction, a
// power loss may roll back the last ones but never leaves the file inconsistent. Saves
// an fsync per transaction.
sqlite3* open_database(const std::string& path);
// Runs SQL without results; errors are prefixed with `what`.
void exec_sql(sqlite3* db, const char* sql, const char* what);

// A prepared statement, finalised on scope exit.
class Stmt {
public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      fail("metadata: prepare \"{}\": {}", sql, sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_blob(int i, const std::string& s) {
    sqlite3_bind_blob(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  // True while a row is available. A UNIQUE/PRIMARY KEY violation fails with EEXIST.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail_code(rc == SQLITE_CONSTRAINT ? EEXIST : 0, "metadata: {}", sqlite3_errmsg(db_));
  }
  std::string text(int col) const {
    auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, col)) : std::string();
  }
  std::string blob(int col) const {
    auto* p = sqlite3_column_blob(st_, col);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(st_, col)) : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(st_, col); }

private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when an exception leaves the scope.
class Txn {
public:
  explicit Txn(sqlite3* db) : db_(db) { exec_sql(db_, "BEGIN IMMEDIATE", "metadata"); }
  ~Txn() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  void commit() {
    exec_sql(db_, "COMMIT", "metadata");
    done_ = true;
  }

private:
  sqlite3* db_;
  bool done_ = false;
};

inline void exec_sql(sqlite3* db, const char* sql, const char* what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    fail("{}: {}", what, msg);
  }
}

inline sqlite3* open_database(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    fail("open database {}: {}", path, msg);
  }
  sqlite3_busy_timeout(db, 10000);
  try {
    exec_sql(db, "PRAGMA journal_mode=WAL", path.c_str());
    exec_sql(db, "PRAGMA synchronous=NORMAL", path.c_str());
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  return db;
}

} // namespace berth::image
