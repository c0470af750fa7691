#!/usr/bin/env python3
"""Build vmrun's initramfs (a gzip'd newc cpio) with python3's stdlib only; no root needed.

    mkinitramfs.py --kver KVER --busybox /bin/busybox --init guest-init.sh \
                   --stage2 guest-stage2.sh --out OUT.cpio.gz MODULE...

Contents: /init (stage 1), /stage2, /bin/busybox (must be static), /dev/console, the
empty mount points stage 1 uses, the modules and their dependencies (resolved with
`modprobe -S KVER --show-depends`, built-in ones skipped) at their /lib/modules paths,
and /modules.list, the insmod order. OUT is written atomically.
"""
import argparse
import gzip
import os
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from elf import is_static_elf  # noqa: E402


def die(msg):
    print(f"mkinitramfs: {msg}", file=sys.stderr)
    sys.exit(1)


def resolve_modules(kver, names):
    """insmod paths in load order, deduplicated."""
    order = []
    for name in names:
        try:
            out = subprocess.run(["modprobe", "-S", kver, "--show-depends", name],
                                 capture_output=True, text=True, check=True).stdout
        except FileNotFoundError:
            die("modprobe not found (apt-get install kmod)")
        except subprocess.CalledProcessError as e:
            die(f"module {name} not found for {kver}: {e.stderr.strip()}")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod" and parts[1] not in order:
                order.append(parts[1])
    for p in order:
        if p.endswith((".xz", ".zst", ".gz")):
            die(f"{p}: compressed modules are not supported by busybox insmod")
    return order


class Cpio:
    def __init__(self):
        self.buf = bytearray()
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
            0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.buf += hdr.encode() + name_b
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, path):
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def file(self, path, data, perm=0o644):
        path = path.strip("/")
        if "/" in path:
            self.dir(os.path.dirname(path))
        self._entry(path, stat.S_IFREG | perm, data)

    def chardev(self, path, major, minor, perm=0o600):
        self._entry(path.strip("/"), stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kver", required=True)
    ap.add_argument("--busybox", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--stage2", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("modules", nargs="*")
    a = ap.parse_args()

    if not os.path.isfile(a.busybox) or not is_static_elf(a.busybox):
        die(f"{a.busybox} is missing or not a static binary (apt-get install busybox-static)")
    mods = resolve_modules(a.kver, a.modules)

    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "newroot", "lower", "ovl"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    with open(a.busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    with open(a.init, "rb") as f:
        c.file("init", f.read(), 0o755)
    with open(a.stage2, "rb") as f:
        c.file("stage2", f.read(), 0o755)
    for m in mods:
        with open(m, "rb") as f:
            c.file(m, f.read())
    c.file("modules.list", "".join(m + "\n" for m in mods).encode())

    tmp = f"{a.out}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(gzip.compress(c.finish(), compresslevel=6, mtime=0))
        os.rename(tmp, a.out)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        die(f"cannot write {a.out}: {e}")


if __name__ == "__main__":
    main()
