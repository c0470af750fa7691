// SQLite persistence of sandbox and container records (<root>/runtime.db, WAL,
// synchronous=NORMAL: a process crash loses nothing committed; each write is one
// transaction of one row). Thread-safe; every method is one statement.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cri/pod/records.hpp"

namespace berth::cri {

class RecordStore {
public:
  // Opens (creating) the database file; fails naming the path.
  static std::unique_ptr<RecordStore> open(const std::string& path);
  virtual ~RecordStore() = default;

  // Insert or replace by id. Fails with EEXIST when another record holds the name.
  virtual void put(const SandboxRecord& rec) = 0;
  virtual void put(const ContainerRecord& rec) = 0;
  virtual void remove_sandbox(const std::string& id) = 0;
  virtual void remove_container(const std::string& id) = 0;
  // Everything, for start-up. Rows that cannot be decoded are returned as errors
  // (id + reason) and left in place for the caller to clean up.
  struct Loaded {
    std::vector<SandboxRecord> sandboxes;
    std::vector<ContainerRecord> containers;
    std::vector<std::string> errors;
  };
  virtual Loaded load() = 0;
};

} // namespace berth::cri
