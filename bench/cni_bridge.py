#!/usr/bin/env python3
"""berth-bridge against the reference bridge + host-local plugins, side by side.

Run through bench/cni-bridge.sh (root, private mount namespace). Everything happens
inside a network namespace made for the run ("the host"), with one bridge and one
/16 per plugin and one network namespace per pod pinned under the run's temp dir, all
removed at the end.

Phase 1: W warm-up pairs, then N rounds of A-ADD A-DEL B-ADD B-DEL (alternating which
plugin goes first). Each plugin process is spawned directly (CNI_* env, config on
stdin) and reaped with os.wait4: wall = spawn to reap, CPU = ru_utime + ru_stime of
the plugin and every child it reaped (host-local for the reference), peak RSS =
ru_maxrss (the largest process of that tree).
Phase 2: P pods attached one after another, then detached, per plugin, R rounds.
"""
import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {path}: {os.strerror(e)}")
    finally:
        os.close(fd)


class Plugin:
    def __init__(self, label, binary, cni_path, bridge, subnet, data_dir):
        self.label, self.binary, self.cni_path = label, binary, cni_path
        self.conf = json.dumps({
            "cniVersion": "1.0.0", "name": f"bench-{label}", "type": os.path.basename(binary),
            "bridge": bridge, "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir}}).encode()

    def run(self, command, cid, netns, rss_file=None):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": self.cni_path}
        r, w = os.pipe()
        out_r, out_w = os.pipe()
        argv = [self.binary]
        if rss_file:
            # GNU time forks the plugin from a small process: its %M is the plugin tree's
            # own peak (a child spawned from Python would inherit Python's high-water mark).
            argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file, self.binary]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                                           (os.POSIX_SPAWN_CLOSE, w), (os.POSIX_SPAWN_CLOSE, out_r)])
        os.close(r)
        os.close(out_w)
        os.write(w, self.conf)
        os.close(w)
        out = b""
        while True:
            chunk = os.read(out_r, 65536)
            if not chunk:
                break
            out += chunk
        os.close(out_r)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{self.label} {command} {cid}: exit {status}: {out.decode(errors='replace')}")
        if rss_file:
            with open(rss_file) as f:
                return wall, ru.ru_utime + ru.ru_stime, int(f.read().split()[-1])
        return wall, ru.ru_utime + ru.ru_stime, 0


def pin_netns(path):
    """A new network namespace bind-mounted on path (unshare(1) keeps it alive)."""
    open(path, "w").close()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)


def unpin_netns(path):
    subprocess.run(["umount", "-l", path], check=False)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def median_ms(xs):
    return statistics.median(xs) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--berth-bridge", required=True)
    ap.add_argument("--reference-dir", default="/usr/lib/cni")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--pod-rounds", type=int, default=3)
    ap.add_argument("--rss-runs", type=int, default=10, help="runs under GNU time for peak RSS (0 skips)")
    ap.add_argument("--out")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="cni-bench-")
    nsdir = os.path.join(tmp, "netns")
    os.makedirs(nsdir)
    host = os.path.join(nsdir, "host")
    pods = []
    pin_netns(host)
    orig = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(host)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        # berth-bridge runs from a copy named like a plugin dir would hold it.
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        shutil.copy(a.berth_bridge, os.path.join(bindir, "berth-bridge"))
        plugins = [
            Plugin("berth", os.path.join(bindir, "berth-bridge"), bindir, "bt-bench-b", "10.252.0.0/16",
                   os.path.join(tmp, "ipam")),
            Plugin("reference", os.path.join(a.reference_dir, "bridge"), a.reference_dir, "bt-bench-r",
                   "10.253.0.0/16", os.path.join(tmp, "ipam")),
        ]
        for i in range(max(a.pods, 1)):
            p = os.path.join(nsdir, f"p{i}")
            pin_netns(p)
            pods.append(p)

        samples = {p.label: {"add": [], "del": [], "add_cpu": [], "del_cpu": [], "rss_add": [], "rss_del": [],
                             "pair": [], "pair_cpu": []} for p in plugins}
        for i in range(a.warmup):
            for p in plugins:
                p.run("ADD", f"warm{i}", pods[0])
                p.run("DEL", f"warm{i}", pods[0])
        for i in range(a.runs):
            order = plugins if i % 2 == 0 else plugins[::-1]
            for p in order:
                s = samples[p.label]
                w1, c1, _ = p.run("ADD", f"c{i}", pods[0])
                w2, c2, _ = p.run("DEL", f"c{i}", pods[0])
                s["add"].append(w1); s["add_cpu"].append(c1)
                s["del"].append(w2); s["del_cpu"].append(c2)
                s["pair"].append(w1 + w2); s["pair_cpu"].append(c1 + c2)
        if os.access("/usr/bin/time", os.X_OK):
            rss_file = os.path.join(tmp, "rss")
            for i in range(a.rss_runs):
                for p in plugins:
                    s = samples[p.label]
                    s["rss_add"].append(p.run("ADD", f"r{i}", pods[0], rss_file)[2])
                    s["rss_del"].append(p.run("DEL", f"r{i}", pods[0], rss_file)[2])

        many = {p.label: {"attach": [], "detach": [], "attach_cpu": [], "detach_cpu": []} for p in plugins}
        for rnd in range(a.pod_rounds):
            order = plugins if rnd % 2 == 0 else plugins[::-1]
            for p in order:
                for phase, cmd in (("attach", "ADD"), ("detach", "DEL")):
                    t0 = time.perf_counter()
                    cpu = 0.0
                    for k in range(a.pods):
                        cpu += p.run(cmd, f"m{rnd}-{k}", pods[k])[1]
                    many[p.label][phase].append(time.perf_counter() - t0)
                    many[p.label][phase + "_cpu"].append(cpu)
    finally:
        os.chdir("/")
        setns_back = orig
        if libc.setns(setns_back, CLONE_NEWNET) != 0:
            print("cannot return to the original network namespace", file=sys.stderr)
        os.close(orig)
        for p in pods + [host]:
            unpin_netns(p)
        shutil.rmtree(tmp, ignore_errors=True)

    b, r = samples["berth"], samples["reference"]
    print(f"\nCNI bridge plugins, ADD then DEL of one pod, median of {a.runs} (ms; RSS MiB)")
    print(f"{'figure':<22}{'berth-bridge':>14}{'bridge+host-local':>20}{'ratio':>8}")
    for key, name in (("add", "ADD wall"), ("add_cpu", "ADD CPU"), ("del", "DEL wall"), ("del_cpu", "DEL CPU"),
                      ("pair", "ADD+DEL wall"), ("pair_cpu", "ADD+DEL CPU")):
        mb, mr = median_ms(b[key]), median_ms(r[key])
        print(f"{name:<22}{mb:>14.2f}{mr:>20.2f}{mb / mr:>8.2f}")
    for key, name in (("rss_add", "peak RSS ADD"), ("rss_del", "peak RSS DEL")):
        if not b[key]:
            continue
        mb, mr = statistics.median(b[key]) / 1024, statistics.median(r[key]) / 1024
        print(f"{name:<22}{mb:>14.1f}{mr:>20.1f}{mb / mr:>8.2f}")
    print(f"\n{a.pods} pods attached one by one, then detached; median of {a.pod_rounds} rounds (ms)")
    mb_all = {}
    for key, name in (("attach", "attach all wall"), ("attach_cpu", "attach all CPU"), ("detach", "detach all wall"),
                      ("detach_cpu", "detach all CPU")):
        mb, mr = median_ms(many["berth"][key]), median_ms(many["reference"][key])
        mb_all[key] = (mb, mr)
        print(f"{name:<22}{mb:>14.1f}{mr:>20.1f}{mb / mr:>8.2f}")
    tb = mb_all["attach"][0] + mb_all["detach"][0]
    tr = mb_all["attach"][1] + mb_all["detach"][1]
    print(f"{'attach+detach wall':<22}{tb:>14.1f}{tr:>20.1f}{tb / tr:>8.2f}")
    ratio = median_ms(b["pair"]) / median_ms(r["pair"])
    print(f"\nADD+DEL wall ratio berth/reference: {ratio:.2f} (target <= 0.50)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"single": samples, "many": many, "args": vars(a)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
