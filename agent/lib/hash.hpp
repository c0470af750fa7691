// MD5 as hex, as the kubelet hashes static pods into UIDs. nettle (already mapped for
// the status endpoint's TLS library) needs no initialisation, unlike OpenSSL 3's providers.
#pragma once

#include <string>
#include <string_view>

namespace berth::agent {

std::string md5_hex(std::string_view data);

} // namespace berth::agent
