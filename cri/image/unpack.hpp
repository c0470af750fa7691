// Applies an OCI layer (a tar stream, already decompressed) to an empty snapshot
// directory, converting OCI whiteouts to overlayfs ones:
//   <dir>/.wh.<name>      -> <dir>/<name> as a 0/0 character device
//   <dir>/.wh..wh..opq    -> trusted.overlay.opaque=y on <dir>
//
// Hostile input (containerd's archive.Apply rules): every path is resolved inside the
// snapshot root (openat2 RESOLVE_IN_ROOT, final components never followed), so symlinks
// in the layer cannot redirect writes outside it; a leading '/' is dropped; a name or a
// hardlink target that climbs out of the root with ".." rejects the layer; hardlinks are
// made with linkat() on the resolved, never-followed target. Device nodes, setuid bits,
// ownership and xattrs are kept as containerd keeps them when running as root, except
// trusted.overlay.* xattrs from the tar, which would let a layer forge overlay metadata.
#pragma once

#include <string>
#include <vector>

#include "cri/image/decompress.hpp"

namespace berth::image {

struct UnpackStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;  // uncompressed tar bytes
};

// `root_dir` is the snapshot's fs directory (empty); `parent_dirs` are the lower layers'
// fs directories, top first, where a hardlink target missing from this layer is looked
// up (and copied up, as overlayfs would). Throws berth::Error naming the entry at fault.
// With start_writeback, each regular file's write-back is started (not awaited) once it
// is written, so a later syncfs() of the layer has little left to flush.
UnpackStats apply_layer(const std::string& root_dir, Decompressor& tar_stream,
                        const std::vector<std::string>& parent_dirs, bool start_writeback = false);

// Clean a tar entry name: drops a leading '/', "." and empty components, resolves ".."
// lexically. Throws when the name climbs above the root. "" is the root itself.
std::string clean_entry_path(std::string_view name);

} // namespace berth::image
