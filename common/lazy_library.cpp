#include "common/lazy_library.hpp"

#include <dlfcn.h>

namespace berth {

bool LazyLibraryBase::loaded() const {
  std::lock_guard lk(mu_);
  return dl_ != nullptr;
}

unsigned LazyLibraryBase::users() const {
  std::lock_guard lk(mu_);
  return users_;
}

unsigned LazyLibraryBase::loads() const {
  std::lock_guard lk(mu_);
  return loads_;
}

void* LazyLibraryBase::symbol(const char* name, std::string& error) const {
  void* p = ::dlsym(dl_, name);
  if (!p && error.empty()) error = soname_ + " lacks " + name;
  return p;
}

bool LazyLibraryBase::acquire_impl(std::string& error) {
  std::lock_guard lk(mu_);
  if (!dl_) {
    dl_ = ::dlopen(soname_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!dl_) {
      const char* why = ::dlerror();
      error = "cannot load " + soname_ + ": " + (why ? why : "dlopen failed");
      return false;
    }
    std::string missing;
    if (!bind(missing)) {
      ::dlclose(dl_);
      dl_ = nullptr;
      error = missing.empty() ? soname_ + ": incomplete" : missing;
      return false;
    }
    on_load();
    ++loads_;
  }
  ++users_;
  return true;
}

void LazyLibraryBase::release_impl() {
  std::lock_guard lk(mu_);
  if (users_ > 0) --users_;
}

bool LazyLibraryBase::unload_impl() {
  std::lock_guard lk(mu_);
  if (!dl_ || users_ > 0) return false;
  on_unload();
  ::dlclose(dl_);
  dl_ = nullptr;
  return true;
}

} // namespace berth
