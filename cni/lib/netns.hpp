// Pod network namespaces pinned by a bind mount (as `ip netns add` and
// containerd's netns package do), so they outlive every process inside them.
#pragma once

#include <string>

namespace berth::cni {

inline constexpr std::string_view kDefaultNetnsDir = "/run/netns";

// Creates a new network namespace pinned at <dir>/<name> and returns that path.
// dir is made a shared mount point (once) so the pin propagates to mount
// namespaces created later, as iproute2 does.
std::string create_netns(const std::string& dir, const std::string& name);
// Unmounts and removes the pin; a missing one is not an error.
void remove_netns(const std::string& path);

} // namespace berth::cni
