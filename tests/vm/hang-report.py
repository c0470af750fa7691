#!/usr/bin/env python3
"""Where a hung vmrun guest is: asks QEMU's monitor (a unix socket) for every vCPU's
registers and names each RIP with the kernel's System.map. Diagnostics only: prints one
line per vCPU on stdout and never fails loudly.

    hang-report.py MONITOR_SOCKET [SYSTEM_MAP]
"""
import bisect
import re
import socket
import sys
import time


def query(path, cmd, wait=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(wait)
    s.connect(path)
    buf = b""
    deadline = time.monotonic() + wait
    sent = False
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if not sent and b"(qemu)" in buf:
            s.sendall(cmd.encode() + b"\n")
            sent = True
            buf = b""
        elif sent and buf.rstrip().endswith(b"(qemu)"):
            break
    s.close()
    return buf.decode(errors="replace")


def load_map(path):
    addrs, names = [], []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[1] in "tTwW":
                    addrs.append(int(parts[0], 16))
                    names.append(parts[2])
    except OSError:
        return None
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [names[i] for i in order]


def main():
    if len(sys.argv) < 2:
        sys.exit(0)
    try:
        out = query(sys.argv[1], "info registers -a")
    except OSError as e:
        print(f"(no monitor: {e})")
        return
    smap = load_map(sys.argv[2]) if len(sys.argv) > 2 else None
    cpus = re.split(r"\n(?=CPU#\d+)", out)
    for block in cpus:
        m_cpu = re.search(r"CPU#(\d+)", block)
        m_rip = re.search(r"[RE]IP=([0-9a-f]+)", block)
        if not m_rip:
            continue
        rip = int(m_rip.group(1), 16)
        where = ""
        if smap:
            i = bisect.bisect_right(smap[0], rip) - 1
            if i >= 0:
                where = f" {smap[1][i]}+0x{rip - smap[0][i]:x}"
        hlt = " (halted)" if re.search(r"\bHLT=1\b", block) else ""
        print(f"cpu{m_cpu.group(1) if m_cpu else '?'} IP={rip:016x}{where}{hlt}")


if __name__ == "__main__":
    main()
