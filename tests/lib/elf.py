"""ELF checks for the suites and benches (busybox must be Debian's busybox-static)."""
import struct

PT_INTERP = 3


def is_static_elf(path) -> bool:
    """True for a 64-bit ELF file without a PT_INTERP program header (no dynamic loader)."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:5] != b"\x7fELF\x02":
            return False
        phoff, = struct.unpack_from("<Q", hdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        f.seek(phoff)
        for _ in range(phnum):
            if struct.unpack_from("<I", f.read(phentsize), 0)[0] == PT_INTERP:
                return False
    return True
