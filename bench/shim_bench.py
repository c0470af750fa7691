#!/usr/bin/env python3
"""berth-shim vs conmon vs containerd-shim-runc-v2 on one machine, in one run.

(a) request -> running: one container of `/bin/sleep 1000` at a time, monitors
    interleaved round by round (A B C D, A B C D, ...):
      berth-shim  `berth-shim --start ...` until it exits (it reports after start),
                  once with berth and once with runc as the runtime;
      conmon      conmon started as podman does (sync pipe), until it reports the pid,
                  then `runc start`;
      containerd  `ctr run -d --rootfs` against a private containerd (CRI plugin off):
                  the daemon's own work is included, there is no other way to drive its shim.
(b) memory: N containers per monitor running at once, idle 2 s, then each monitor
    process's /proc/PID/smaps_rollup. With N monitors sharing one binary, Pss splits the
    shared pages N ways and Private is what each container costs alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUNC = shutil.which("runc") or "/usr/sbin/runc"


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    raise RuntimeError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def smaps(pid: int) -> dict:
    vals = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                vals[parts[0].rstrip(":")] = int(parts[1])
    with open(f"/proc/{pid}/status") as f:
        threads = int(next(ln for ln in f if ln.startswith("Threads:")).split()[1])
    return {"rss": vals["Rss"], "pss": vals["Pss"], "private": vals["Private_Clean"] + vals["Private_Dirty"],
            "private_dirty": vals["Private_Dirty"], "threads": threads}


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="shim-bench-", dir="/tmp"))
        self.rootfs = self.tmp / "rootfs"
        self.make_rootfs()
        self.n = 0
        self.ctd = None

    # ---- setup ---------------------------------------------------------------------
    def make_rootfs(self):
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc"):
            (self.rootfs / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2("/bin/busybox", self.rootfs / "bin" / "busybox")
        for a in ("sh", "sleep", "true"):
            os.symlink("busybox", self.rootfs / "bin" / a)
        spec_dir = self.tmp / "spec"
        spec_dir.mkdir()
        sh([RUNC, "spec"], cwd=spec_dir)
        self.spec = json.loads((spec_dir / "config.json").read_text())

    def bundle(self, cid: str) -> Path:
        b = self.tmp / "bundles" / cid
        b.mkdir(parents=True)
        cfg = json.loads(json.dumps(self.spec))
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/sleep", "1000"]
        cfg["root"] = {"path": str(self.rootfs), "readonly": True}
        cfg["linux"]["cgroupsPath"] = f"/shim-bench/{cid}"
        (b / "config.json").write_text(json.dumps(cfg))
        return b

    def next_id(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def start_containerd(self):
        d = self.tmp / "containerd"
        d.mkdir()
        (d / "config.toml").write_text(
            f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
            f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{d}/ctd.sock"\n[ttrpc]\n  address = "{d}/ctd.sock.ttrpc"\n')
        self.ctd_sock = str(d / "ctd.sock")
        self.ctd = subprocess.Popen(["containerd", "--config", str(d / "config.toml")],
                                    stdout=open(d / "log", "w"), stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.ctd_sock), what="containerd socket")
        wait_for(lambda: sh(["ctr", "--address", self.ctd_sock, "version"], check=False).returncode == 0,
                 what="containerd to serve")

    def stop_containerd(self):
        if self.ctd:
            self.ctd.send_signal(signal.SIGTERM)
            self.ctd.wait(30)

    # ---- one container per monitor: start returns (seconds, monitor pid, stop function)
    def start_berth_shim(self, runtime: str):
        kind = "bs" if runtime == self.args.berth else "br"
        cid = self.next_id(kind)
        b = self.bundle(cid)
        root = self.tmp / f"root-{kind}"
        state = self.tmp / "shim"
        cmd = [self.args.shim, "--id", cid, "--bundle", str(b), "--runtime", runtime,
               f"--runtime-arg=--root", f"--runtime-arg={root}", "--state-dir", str(state),
               "--log-path", str(self.tmp / f"{cid}.log"), "--start", "--delete"]
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dt = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError(f"berth-shim failed: {p.stderr}")
        shim_pid = json.loads(p.stdout)["shim_pid"]

        def stop():
            sh([runtime, "--root", str(root), "kill", cid, "KILL"], check=False)
            wait_for(lambda: not alive(shim_pid), what="berth-shim to exit")
        return dt, shim_pid, stop

    def start_conmon(self):
        cid = self.next_id("cm")
        b = self.bundle(cid)
        root = self.tmp / "root-cm"
        d = self.tmp / "conmon" / cid
        d.mkdir(parents=True)
        r, w = os.pipe()
        env = dict(os.environ, _OCI_SYNCPIPE=str(w))
        cmd = ["conmon", "--api-version", "1", "-c", cid, "-u", cid, "-r", RUNC, "-b", str(b),
               "-p", str(d / "pidfile"), "-P", str(d / "conmon.pid"), "-n", cid,
               "--exit-dir", str(d), "-l", f"k8s-file:{self.tmp / (cid + '.log')}",
               "--socket-dir-path", str(d), "--runtime-arg", "--root", "--runtime-arg", str(root),
               "--log-level", "error", "--syslog"]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=env, pass_fds=(w,), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
            if b"}" in data:
                break
        os.close(r)
        p.wait()
        reply = json.loads(data.decode().split("\n")[0]) if data else {}
        if reply.get("data", -1) <= 0:
            raise RuntimeError(f"conmon create failed: {data!r}")
        sh([RUNC, "--root", str(root), "start", cid])
        dt = time.monotonic() - t0
        conmon_pid = int((d / "conmon.pid").read_text())

        def stop():
            sh([RUNC, "--root", str(root), "kill", cid, "KILL"], check=False)
            wait_for(lambda: not alive(conmon_pid), what="conmon to exit")
            sh([RUNC, "--root", str(root), "delete", "--force", cid], check=False)
        return dt, conmon_pid, stop

    def start_containerd_shim(self):
        cid = self.next_id("ct")
        ctr = ["ctr", "--address", self.ctd_sock]
        t0 = time.monotonic()
        p = sh(ctr + ["run", "-d", "--cgroup", f"/shim-bench/{cid}", "--rootfs", str(self.rootfs), cid,
                      "/bin/sleep", "1000"], check=False)
        dt = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError(f"ctr run failed: {p.stderr}")
        out = sh(["pgrep", "-f", f"containerd-shim-runc-v2 .*-id {cid} -address {self.ctd_sock}"]).stdout.split()
        shim_pid = int(out[0])

        def stop():
            sh(ctr + ["task", "kill", "-s", "KILL", cid], check=False)
            wait_for(lambda: sh(ctr + ["task", "delete", cid], check=False).returncode == 0, what="task delete")
            sh(ctr + ["container", "rm", cid], check=False)
            wait_for(lambda: not alive(shim_pid), what="containerd-shim to exit")
        return dt, shim_pid, stop

    def monitors(self):
        m = {}
        names = self.args.monitors.split(",")
        if "berth-shim" in names:
            m["berth-shim (berth)"] = lambda: self.start_berth_shim(self.args.berth)
        if "berth-shim-runc" in names:
            m["berth-shim (runc)"] = lambda: self.start_berth_shim(RUNC)
        if "conmon" in names:
            m["conmon (runc)"] = self.start_conmon
        if "containerd" in names:
            m["containerd-shim-runc-v2 (runc)"] = self.start_containerd_shim
        return m

    # ---- phases ----------------------------------------------------------------------
    def run(self):
        if "containerd" in self.args.monitors:
            self.start_containerd()
        mons = self.monitors()
        results = {name: {"start_s": [], "memory": []} for name in mons}
        try:
            for _ in range(self.args.warmup):
                for name, start in mons.items():
                    start()[2]()
            for _ in range(self.args.runs):
                for name, start in mons.items():
                    dt, _, stop = start()
                    results[name]["start_s"].append(dt)
                    stop()
            for name, start in mons.items():
                started = [start() for _ in range(self.args.containers)]
                time.sleep(2)
                results[name]["memory"] = [smaps(pid) for _, pid, _ in started]
                for _, _, stop in started:
                    stop()
        finally:
            self.stop_containerd()
        return results


def median_range(vals, scale=1.0, fmt="{:.2f}"):
    vals = [v * scale for v in vals]
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def report(results, args):
    names = list(results)
    rows = [("request -> running, ms", lambda r: median_range(r["start_s"], 1000, "{:.1f}")),
            ("Private (Clean+Dirty), MiB", lambda r: median_range([m["private"] for m in r["memory"]], 1 / 1024)),
            ("Private_Dirty, MiB", lambda r: median_range([m["private_dirty"] for m in r["memory"]], 1 / 1024)),
            ("Pss, MiB", lambda r: median_range([m["pss"] for m in r["memory"]], 1 / 1024)),
            ("Rss, MiB", lambda r: median_range([m["rss"] for m in r["memory"]], 1 / 1024)),
            ("threads", lambda r: median_range([m["threads"] for m in r["memory"]], 1, "{:.0f}"))]
    print(f"\nper container, median (min-max); {args.runs} timed starts per monitor, "
          f"{args.containers} containers per monitor for memory\n")
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, fn in rows:
        print(f"| {label} | " + " | ".join(fn(results[n]) for n in names) + " |")
    base = next((n for n in names if n.startswith("berth-shim (berth)")), names[0])
    print("\nratios to " + base + " (medians):")
    for n in names:
        if n == base:
            continue
        pm = statistics.median(m["private"] for m in results[n]["memory"]) / \
            statistics.median(m["private"] for m in results[base]["memory"])
        ps = statistics.median(m["pss"] for m in results[n]["memory"]) / \
            statistics.median(m["pss"] for m in results[base]["memory"])
        st = statistics.median(results[n]["start_s"]) / statistics.median(results[base]["start_s"])
        print(f"  {n}: Private x{pm:.1f}, Pss x{ps:.1f}, request->running x{st:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=10, help="containers per monitor for memory (10)")
    ap.add_argument("--runs", type=int, default=20, help="timed starts per monitor (20)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--shim", default=os.environ.get("BERTH_SHIM") or str(REPO / "build" / "shim" / "berth-shim"))
    ap.add_argument("--berth", default=str(REPO / "build" / "runtime" / "berth"))
    ap.add_argument("--monitors", default="berth-shim,berth-shim-runc,conmon,containerd",
                    help="comma list of berth-shim, berth-shim-runc, conmon, containerd")
    ap.add_argument("--out", help="write raw results as JSON")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    b = Bench(args)
    try:
        results = b.run()
    finally:
        if not args.keep_tmp:
            shutil.rmtree(b.tmp, ignore_errors=True)
            for mp in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"):
                with contextlib_suppress():
                    os.rmdir(f"{mp}/shim-bench")
    report(results, args)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


class contextlib_suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


if __name__ == "__main__":
    sys.exit(main())
