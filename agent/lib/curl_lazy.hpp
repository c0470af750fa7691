// libcurl for berthlet's httpGet probes and hooks, loaded with dlopen at the first one
// (common/curl_lazy.hpp, shared with berthd's image library). Linking it would map its
// whole TLS and protocol chain (OpenSSL, Kerberos, LDAP, SSH, ... ~3 MiB resident) into
// every berthlet, including the many that never run an httpGet.
#pragma once

#include <string>

#include "common/curl_lazy.hpp"

namespace berth::agent {

using berth::CurlApi;

// The loaded API, or nullptr with error set (libcurl.so.4 missing or incomplete). Once
// loaded, berthlet keeps it for the life of the process.
const CurlApi* curl_api(std::string& error);

// A CURLOPT_XFERINFOFUNCTION that ends the transfer once *(std::atomic<bool>*)user is set
// (a status sink aborted when shutdown's flush runs out of time).
int curl_abort_when_set(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

// A credential file's text without its trailing newlines and spaces.
std::string trim_trailing_space(std::string s);

} // namespace berth::agent
