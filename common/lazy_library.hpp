// A shared library loaded with dlopen when first needed, through one typed table of its
// functions, and closed again when nobody uses it. Linking a library such as libcurl or
// libarchive maps its whole dependency chain (TLS, Kerberos, LDAP, XML, ICU, ...) into
// every process that links it, used or not; a daemon that needs it only now and then
// loads it for that time (common/curl_lazy.hpp, cri/image/archive_lazy.hpp).
//
// Thread-safe. Users count: acquire() loads (the first time, or again after an unload) and
// counts a user, release() uncounts it; unload_if_unused() closes the library when no user
// is left (the caller decides when: berthd after an idle period, berthlet never).
// Some libraries in a chain cannot be unloaded (DF_1_NODELETE: libssl, p11-kit): dlclose
// leaves those mapped, and everything else goes.
#pragma once

#include <mutex>
#include <string>

namespace berth {

class LazyLibraryBase {
public:
  LazyLibraryBase(const LazyLibraryBase&) = delete;
  LazyLibraryBase& operator=(const LazyLibraryBase&) = delete;
  bool loaded() const;
  unsigned users() const;
  const std::string& soname() const { return soname_; }
  // How many times the library was loaded (tests: a reload after an unload).
  unsigned loads() const;

protected:
  explicit LazyLibraryBase(std::string soname) : soname_(std::move(soname)) {}
  ~LazyLibraryBase() = default;
  // dlopen + bind + on_load under the lock; counts a user. False with error set.
  bool acquire_impl(std::string& error);
  void release_impl();
  bool unload_impl();
  // Resolves one symbol; records the first missing one in error.
  void* symbol(const char* name, std::string& error) const;
  virtual bool bind(std::string& error) = 0;  // fills the table from dl_
  virtual void on_load() {}                    // library init (curl_global_init)
  virtual void on_unload() {}                  // library cleanup (curl_global_cleanup)

private:
  std::string soname_;
  mutable std::mutex mu_;
  void* dl_ = nullptr;
  unsigned users_ = 0;
  unsigned loads_ = 0;
};

// Api: a struct of function pointers; Bind: bool(LazyLibrary<Api>&, Api&, std::string&)
// supplied by the derived class through bind_table().
template <typename Api>
class LazyLibrary : public LazyLibraryBase {
public:
  // The table, loading the library if needed; nullptr with error set when it cannot be
  // loaded or lacks a function. Counts a user until release().
  const Api* acquire(std::string& error) { return acquire_impl(error) ? &api_ : nullptr; }
  void release() { release_impl(); }
  // Closes the library when it is loaded and has no user. True when it was closed.
  bool unload_if_unused() { return unload_impl(); }
  // The table of a library the caller holds (acquired); no check.
  const Api& api() const { return api_; }

protected:
  explicit LazyLibrary(std::string soname) : LazyLibraryBase(std::move(soname)) {}
  template <typename Fn>
  void sym(const char* name, Fn& fn, std::string& error) {
    fn = reinterpret_cast<Fn>(symbol(name, error));
  }
  Api api_{};
};

} // namespace berth
