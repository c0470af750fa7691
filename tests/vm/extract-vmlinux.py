#!/usr/bin/env python3
"""Extract the uncompressed ELF vmlinux from an x86 bzImage (python3 stdlib only).

    extract-vmlinux.py BZIMAGE OUT

The payload is located through the boot protocol's setup header (payload_offset and
payload_length, boot protocol >= 2.08) and decompressed with lzma (xz, lzma), gzip or
bz2. The result must be a 64-bit ELF with a Xen PVH entry note
(XEN_ELFNOTE_PHYS32_ENTRY), which is what QEMU's microvm boots directly.
OUT is written atomically (OUT.tmp.<pid>, then rename). Exit 0 on success, 1 on error.
"""
import bz2
import gzip
import lzma
import os
import struct
import sys

XEN_ELFNOTE_PHYS32_ENTRY = 18


def die(msg):
    print(f"extract-vmlinux: {msg}", file=sys.stderr)
    sys.exit(1)


def payload(img: bytes) -> bytes:
    if len(img) < 0x260 or img[0x202:0x206] != b"HdrS":
        die("not an x86 bzImage (no HdrS setup header)")
    version, = struct.unpack_from("<H", img, 0x206)
    if version < 0x208:
        die(f"boot protocol {version >> 8}.{version & 0xff} is too old (need 2.08)")
    setup_sects = img[0x1f1] or 4
    pm_start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", img, 0x248)
    start = pm_start + off
    data = img[start:start + length]
    if len(data) != length or length == 0:
        die("payload_offset/payload_length point outside the image")
    return data


def decompress(data: bytes) -> bytes:
    if data.startswith(b"\xfd7zXZ\x00"):
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return d.decompress(data)
    if data.startswith(b"\x5d\x00\x00"):
        d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        return d.decompress(data)
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if data.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        die("zstd-compressed kernel: python3's stdlib cannot decompress it")
    die(f"unknown payload compression (magic {data[:6].hex()})")


def has_pvh_note(elf: bytes) -> bool:
    """True if a PT_NOTE segment holds a Xen note of type PHYS32_ENTRY."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    src, out = sys.argv[1], sys.argv[2]
    try:
        with open(src, "rb") as f:
            img = f.read()
    except OSError as e:
        die(f"cannot read {src}: {e}")
    try:
        elf = decompress(payload(img))
    except (lzma.LZMAError, OSError, EOFError, ValueError) as e:
        die(f"cannot decompress {src}: {e}")
    if elf[:5] != b"\x7fELF\x02":
        die(f"{src}: the payload is not a 64-bit ELF")
    if not has_pvh_note(elf):
        die(f"{src}: vmlinux has no PVH entry note (kernel built without CONFIG_PVH)")
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(elf)
        os.rename(tmp, out)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        die(f"cannot write {out}: {e}")


if __name__ == "__main__":
    main()
