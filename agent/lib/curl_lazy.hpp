// libcurl, loaded with dlopen at the first httpGet probe or hook. Linking it would map
// its whole TLS and protocol chain (OpenSSL, Kerberos, LDAP, SSH, ... ~3 MiB resident)
// into every berthlet, including the many that never run an httpGet.
#pragma once

#include <string>

#include <curl/curl.h>

namespace berth::agent {

struct CurlApi {
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

// The loaded API, or nullptr with error set (libcurl.so.4 missing or incomplete).
const CurlApi* curl_api(std::string& error);

} // namespace berth::agent
