// libcurl for berthlet's httpGet probes and hooks, loaded with dlopen at the first one
// (common/curl_lazy.hpp, shared with berthd's image library). Linking it would map its
// whole TLS and protocol chain (OpenSSL, Kerberos, LDAP, SSH, ... ~3 MiB resident) into
// every berthlet, including the many that never run an httpGet.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "common/curl_lazy.hpp"

namespace berth::agent {

using berth::CurlApi;

// The loaded API, or nullptr with error set (libcurl.so.4 missing or incomplete). Once
// loaded, berthlet keeps it for the life of the process.
const CurlApi* curl_api(std::string& error);

// A status sink's request options: the timeout (connect included), no signals, no proxy
// from the environment, http(s) only, and an end to the transfer once *aborted is set
// (shutdown's flush ran out of time).
void curl_sink_request_options(const CurlApi* c, CURL* h, std::chrono::milliseconds timeout, std::atomic<bool>* aborted);

// A credential file's text without its trailing newlines and spaces.
std::string trim_trailing_space(std::string s);

} // namespace berth::agent
