#include "agent/lib/curl_lazy.hpp"

#include <dlfcn.h>

#include <mutex>

namespace berth::agent {

const CurlApi* curl_api(std::string& error) {
  static CurlApi api;
  static std::string load_error;
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      load_error = std::string("cannot load libcurl.so.4: ") + ::dlerror();
      return;
    }
    auto sym = [&](const char* name, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      if (!fn && load_error.empty()) load_error = std::string("libcurl.so.4 lacks ") + name;
    };
    sym("curl_easy_init", api.easy_init);
    sym("curl_easy_setopt", api.easy_setopt);
    sym("curl_easy_perform", api.easy_perform);
    sym("curl_easy_getinfo", api.easy_getinfo);
    sym("curl_easy_cleanup", api.easy_cleanup);
    sym("curl_easy_strerror", api.easy_strerror);
    sym("curl_slist_append", api.slist_append);
    sym("curl_slist_free_all", api.slist_free_all);
    ok = load_error.empty(); // the library stays loaded for the life of the process
  });
  if (!ok) error = load_error;
  return ok ? &api : nullptr;
}

} // namespace berth::agent
