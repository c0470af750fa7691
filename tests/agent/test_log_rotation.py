"""Container log rotation (containerLogMaxSize/MaxFiles) under a container writing numbered
lines as fast as it can (target 50 MB/s), against containerd and berthd: no line is lost
or duplicated across rotations, at most MaxFiles files remain, rotated files are gzip
except the newest."""
from __future__ import annotations

import gzip
import re
import subprocess
import time

import pytest

import agent_lib as L
from agent_lib import container, pod_manifest, running

MAX_SIZE = 5 << 20
MAX_FILES = 3
WRITE_SECONDS = 8

# Whole 100-byte lines "<10-digit number> xxx...\n" in 64 KiB writes, paced to 50 MB/s;
# at the end one "END <lines> <bytes> <ns>" line, then it waits for SIGTERM.
WRITER_C = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static long long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
int main(int argc, char **argv) {
  signal(SIGTERM, SIG_DFL);
  long long seconds = argc > 1 ? atoll(argv[1]) : 5, rate = 50000000LL, lines = 0, bytes = 0;
  char buf[65500]; int per = sizeof buf / 100;
  long long start = now_ns(), end = start + seconds * 1000000000LL;
  while (now_ns() < end) {
    for (int i = 0; i < per; i++) {
      snprintf(buf + i * 100, 101, "%010lld %088d", lines++, 0);
      buf[i * 100 + 99] = '\n';
    }
    size_t len = per * 100, off = 0;
    while (off < len) { ssize_t n = write(1, buf + off, len - off); if (n <= 0) return 1; off += n; }
    bytes += len;
    long long due = start + bytes * 1000000000LL / rate;
    long long t = now_ns();
    if (due > t) { struct timespec d = {(due - t) / 1000000000LL, (due - t) % 1000000000LL}; nanosleep(&d, 0); }
  }
  printf("END %lld %lld %lld\n", lines, bytes, now_ns() - start);
  fflush(stdout);
  for (;;) pause();
}
"""


@pytest.fixture(scope="module")
def writer_image(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("writer")
    (d / "w.c").write_text("#include <stdlib.h>\n" + WRITER_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(d / "w"), str(d / "w.c")], check=True)
    data = (d / "w").read_bytes()
    base = L.oci_image.Layer(L.oci_image.busybox_tar(lambda t: t.file("bin/writer", data, 0o755)), "gzip")
    L.oci_image.push(L.oci_image.Image([base]), registry.addr, "library/logwriter:1")
    return "logwriter:1"


def cri_records(data: bytes):
    """CRI log lines -> messages, partial records joined."""
    out, partial = [], b""
    for line in data.split(b"\n"):
        if not line:
            continue
        ts, stream, tag, msg = line.split(b" ", 3)
        partial += msg
        if tag == b"F":
            out.append(partial)
            partial = b""
    return out


def test_rotation_under_fast_writer(berthlet_factory, writer_image, tmp_path):
    b = berthlet_factory()
    cfg = tmp_path / "kubelet.yaml"
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                   f"containerLogMaxSize: {MAX_SIZE >> 20}Mi\ncontainerLogMaxFiles: {MAX_FILES}\n")
    b.start("--config", str(cfg))
    c = container("w", "", image=writer_image)
    c["command"] = ["/bin/writer", str(WRITE_SECONDS)]
    b.write("w.yaml", pod_manifest("w", [c]))
    b.wait_pod("w", lambda p: running(p, "w"))
    logdir = next(b.logs.glob(f"default_w-{L.NODE}_*")) / "w"
    rotated_seen = set()

    def finished():
        names = sorted(p.name for p in logdir.iterdir())
        rotated_seen.update(n.removesuffix(".gz") for n in names if n != "0.log")
        # The END line is in the current file, or in the newest rotated one when the
        # file was rotated after it.
        plain = [n for n in names if n != "0.log" and not n.endswith((".gz", ".tmp"))]
        for n in ["0.log"] + plain[-1:]:
            with open(logdir / n, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 300))
                if b"END " in f.read():
                    return True
        return False
    L.wait_for(finished, timeout=WRITE_SECONDS + 60, interval=0.2, what="the writer's END line")
    # The last rotation (if the final file grew over the size) settles within a few periods.
    time.sleep(3)
    files = sorted(p.name for p in logdir.iterdir())
    rotated_seen.update(f.removesuffix(".gz") for f in files if f != "0.log")
    assert "0.log" in files
    assert not [f for f in files if f.endswith(".tmp")], files
    rotated = [f for f in files if f != "0.log"]
    assert len(files) <= MAX_FILES, files
    assert rotated, f"no rotation happened: {files}"
    assert all(re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.gz)?", f) for f in rotated), rotated
    assert all(f.endswith(".gz") for f in rotated[:-1]) and not rotated[-1].endswith(".gz"), rotated
    assert (logdir / rotated[-1]).stat().st_size >= MAX_SIZE  # rotated only once over the size
    # A line may be split across a rotation (a "P" record in one file, the rest in the
    # next): the files are read as one stream, oldest first.
    data = b""
    for f in rotated + ["0.log"]:
        raw = (logdir / f).read_bytes()
        data += gzip.decompress(raw) if f.endswith(".gz") else raw
    msgs = cri_records(data)
    if len(msgs[0]) != 99:
        msgs = msgs[1:]  # the tail of a line whose head was in a removed file
    numbers, end = [], None
    for msg in msgs:
        if msg.startswith(b"END "):
            end = [int(x) for x in msg.split()[1:]]
        else:
            assert len(msg) == 99, f"a torn line: {msg[:120]!r}"
            numbers.append(int(msg[:10]))
    assert end is not None
    lines, nbytes, ns = end
    rate = nbytes / (ns / 1e9) / 1e6
    first = numbers[0]
    gaps = [(a, b2) for a, b2 in zip(numbers, numbers[1:]) if b2 != a + 1]
    assert not gaps, f"lines lost or duplicated across rotations at {gaps[:5]} (files {rotated})"
    assert numbers[-1] == lines - 1
    print(f"\nrotation: writer {rate:.1f} MB/s ({lines} lines, {nbytes} bytes in {ns / 1e9:.1f}s); "
          f"{len(rotated_seen)} rotated files seen, {len(numbers)} lines checked contiguous from {first}; "
          f"kept {files}")
    b.remove("w.yaml")
