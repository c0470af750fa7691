// libcurl through one typed table, loaded with dlopen when first needed (see
// common/lazy_library.hpp). Linking libcurl would map its whole TLS and protocol chain
// (OpenSSL, GnuTLS, Kerberos, LDAP, SSH, RTMP, ... ~3-5 MiB resident) into every process
// that links it; berthlet needs it only for httpGet probes, berthd only while it pulls.
#pragma once

#include <string>

#include <curl/curl.h>

#include "common/lazy_library.hpp"

namespace berth {

struct CurlApi {
  CURLcode (*global_init)(long);
  void (*global_cleanup)();
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_reset)(CURL*);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
  CURLSH* (*share_init)();
  CURLSHcode (*share_setopt)(CURLSH*, CURLSHoption, ...);
  CURLSHcode (*share_cleanup)(CURLSH*);
};

// libcurl.so.4; curl_global_init at each load, curl_global_cleanup before each unload
// (the caller makes sure no handle or share of it is left by then).
class CurlLibrary final : public LazyLibrary<CurlApi> {
public:
  static CurlLibrary& instance();

private:
  CurlLibrary() : LazyLibrary("libcurl.so.4") {}
  bool bind(std::string& error) override;
  void on_load() override;
  void on_unload() override;
};

} // namespace berth
