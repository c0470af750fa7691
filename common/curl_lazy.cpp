#include "common/curl_lazy.hpp"

namespace berth {

CurlLibrary& CurlLibrary::instance() {
  static CurlLibrary* lib = new CurlLibrary();  // never destroyed: users may outlive static destructors
  return *lib;
}

bool CurlLibrary::bind(std::string& error) {
  sym("curl_global_init", api_.global_init, error);
  sym("curl_global_cleanup", api_.global_cleanup, error);
  sym("curl_easy_init", api_.easy_init, error);
  sym("curl_easy_setopt", api_.easy_setopt, error);
  sym("curl_easy_perform", api_.easy_perform, error);
  sym("curl_easy_getinfo", api_.easy_getinfo, error);
  sym("curl_easy_reset", api_.easy_reset, error);
  sym("curl_easy_cleanup", api_.easy_cleanup, error);
  sym("curl_easy_strerror", api_.easy_strerror, error);
  sym("curl_slist_append", api_.slist_append, error);
  sym("curl_slist_free_all", api_.slist_free_all, error);
  sym("curl_share_init", api_.share_init, error);
  sym("curl_share_setopt", api_.share_setopt, error);
  sym("curl_share_cleanup", api_.share_cleanup, error);
  return error.empty();
}

void CurlLibrary::on_load() { api_.global_init(CURL_GLOBAL_DEFAULT); }

void CurlLibrary::on_unload() { api_.global_cleanup(); }

} // namespace berth
