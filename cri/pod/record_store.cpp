#include "cri/pod/record_store.hpp"

#include <mutex>

#include <fmt/format.h>

#include "cri/image/sqlite.hpp"

namespace berth::cri {
namespace {

using image::Stmt;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sandboxes (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  phase INTEGER NOT NULL,
  config BLOB NOT NULL,
  data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
  id TEXT PRIMARY KEY,
  sandbox_id TEXT NOT NULL,
  name TEXT NOT NULL UNIQUE,
  phase INTEGER NOT NULL,
  config BLOB NOT NULL,
  data TEXT NOT NULL
);
)sql";

class SqliteRecordStore final : public RecordStore {
public:
  explicit SqliteRecordStore(const std::string& path) : db_(image::open_database(path)) {
    try {
      image::exec_sql(db_, kSchema, "runtime records");
    } catch (Error& e) {
      sqlite3_close(db_);
      e.wrap(fmt::format("open {}", path));
      throw;
    }
  }
  ~SqliteRecordStore() override { sqlite3_close(db_); }

  void put(const SandboxRecord& rec) override {
    std::string config;
    rec.config.SerializeToString(&config);
    std::lock_guard lk(mu_);
    // An upsert on id only: a name held by another row stays a constraint error.
    Stmt(db_,
         "INSERT INTO sandboxes(id, name, phase, config, data) VALUES(?1, ?2, ?3, ?4, ?5) "
         "ON CONFLICT(id) DO UPDATE SET name=?2, phase=?3, config=?4, data=?5")
        .bind(1, rec.id)
        .bind(2, rec.name)
        .bind(3, int64_t{static_cast<int>(rec.phase)})
        .bind_blob(4, config)
        .bind(5, rec.data_json())
        .step();
  }

  void put(const ContainerRecord& rec) override {
    std::string config;
    rec.config.SerializeToString(&config);
    std::lock_guard lk(mu_);
    Stmt(db_,
         "INSERT INTO containers(id, sandbox_id, name, phase, config, data) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
         "ON CONFLICT(id) DO UPDATE SET sandbox_id=?2, name=?3, phase=?4, config=?5, data=?6")
        .bind(1, rec.id)
        .bind(2, rec.sandbox_id)
        .bind(3, rec.name)
        .bind(4, int64_t{static_cast<int>(rec.phase)})
        .bind_blob(5, config)
        .bind(6, rec.data_json())
        .step();
  }

  void remove_sandbox(const std::string& id) override {
    std::lock_guard lk(mu_);
    Stmt(db_, "DELETE FROM sandboxes WHERE id = ?1").bind(1, id).step();
  }

  void remove_container(const std::string& id) override {
    std::lock_guard lk(mu_);
    Stmt(db_, "DELETE FROM containers WHERE id = ?1").bind(1, id).step();
  }

  Loaded load() override {
    Loaded out;
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT id, name, phase, config, data FROM sandboxes");
    while (s.step()) {
      SandboxRecord r;
      r.id = s.text(0);
      r.name = s.text(1);
      r.phase = static_cast<SandboxPhase>(s.integer(2));
      if (!decode(r, s.blob(3), s.text(4), out.errors)) {
        r.phase = SandboxPhase::creating;  // undecodable: cleaned up like a half-made one
        out.errors.push_back(fmt::format("sandbox {}: record unreadable; it is removed", r.id));
      }
      out.sandboxes.push_back(std::move(r));
    }
    Stmt c(db_, "SELECT id, sandbox_id, name, phase, config, data FROM containers");
    while (c.step()) {
      ContainerRecord r;
      r.id = c.text(0);
      r.sandbox_id = c.text(1);
      r.name = c.text(2);
      r.phase = static_cast<ContainerPhase>(c.integer(3));
      if (!decode(r, c.blob(4), c.text(5), out.errors)) {
        r.phase = ContainerPhase::creating;
        out.errors.push_back(fmt::format("container {}: record unreadable; it is removed", r.id));
      }
      out.containers.push_back(std::move(r));
    }
    return out;
  }

private:
  template <typename Record>
  static bool decode(Record& r, const std::string& config, const std::string& data, std::vector<std::string>& errors) {
    if (!r.config.ParseFromString(config)) return false;
    try {
      r.load_data_json(data);
    } catch (const std::exception& e) {
      errors.push_back(fmt::format("{}: {}", r.id, e.what()));
      return false;
    }
    return true;
  }

  sqlite3* db_;
  std::mutex mu_;
};

} // namespace

std::unique_ptr<RecordStore> RecordStore::open(const std::string& path) {
  return std::make_unique<SqliteRecordStore>(path);
}

} // namespace berth::cri
