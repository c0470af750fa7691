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

} // namespace berth::agent
