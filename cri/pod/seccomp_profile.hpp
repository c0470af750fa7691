// Seccomp profiles for CRI containers: RuntimeDefault is built in (the allow-list of
// containerd's and Docker's default profile, with their argument filters for clone,
// clone3, personality and socket), Localhost profiles are read from files (Docker /
// containerd profile format, or an OCI linux.seccomp object).
#pragma once

#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth::cri {

// The OCI linux.seccomp object of the built-in RuntimeDefault profile for this
// architecture. Capabilities the process keeps widen it as Docker's does (CAP_SYS_ADMIN
// allows the mount family, CAP_SYS_PTRACE ptrace, ...); `capabilities` is the bounding
// set of the process ("CAP_SYS_ADMIN", ...).
json default_seccomp_profile(const std::vector<std::string>& capabilities);

// Reads a Localhost profile (at most 1 MiB, nesting bounded) and returns the OCI
// linux.seccomp object. Accepts Docker's format (defaultAction, architectures or
// archMap, syscalls[].names/name, includes/excludes by arch and caps, args) and the
// OCI format. Errors name the file and the field.
json load_seccomp_profile(const std::string& path, const std::vector<std::string>& capabilities);

} // namespace berth::cri
