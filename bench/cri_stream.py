#!/usr/bin/python3
"""CRI streaming (Exec, PortForward over SPDY/3.1): berthd's stream server vs containerd 1.6.

Both daemons run side by side as in bench/cri_runtime.py (same registry, image, CNI chain,
daemon set-up; imported from there), each with one pod whose busybox container serves
/www with busybox httpd on port 8080. The client for both is tests/cri/spdy_client (Go, on
Debian's spdystream, the SPDY library under client-go), built at the start with
tests/lib/stream_clients.py. Per sample, and per daemon in an order that alternates
between samples:

  exec true          Exec RPC + one spdy_client session (wall), and the RPC alone
  exec 64 MiB        `head -c 67108864 /dev/zero` through the exec's stdout, MB/s; the
                     bytes are counted on every run
  port-forward x20   20 sequential HTTP/1.0 GETs of a 5-byte file over one connection
  port-forward bulk  GET of a --pf-mib MiB file (16) from httpd, MB/s, length checked

Memory: the daemon's PSS/RSS and thread count at steady state before the first stream
call (berthd maps libmicrohttpd only then) and, idle, after the benchmark.
Run through bench/cri-stream.sh. Quote medians and ratios from one run only.
"""

import argparse
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cri_runtime  # noqa: E402  (puts tests/cri and tests/lib on sys.path)
from cri_runtime import (REPO, UNLOAD_AFTER_PULL, cni_conflist, cpu_ticks, make_daemons,  # noqa: E402
                         pause_tar, remove_cgroup_tree, stop_daemons)
from benchlib import memory  # noqa: E402

import oci_image  # noqa: E402
from registry import Registry  # noqa: E402
from stream_clients import build_spdy_client  # noqa: E402

MIB = 1024 * 1024
EXEC_BULK = 64 * MIB  # exec: `head -c` of this many bytes
PF_BULK_MIB = 16  # port-forward: the size of /www/big (default of --pf-mib)
PORT = 8080
SEQ_REQUESTS = 20
CGROUP_TOP = "berth-stream-bench"
# Own bridges and subnets, so that a cri-runtime bench running at the same time is not disturbed.
NETS = {"berthd": ("bt-strm-b", "10.93.0.0/16"), "containerd": ("bt-strm-c", "10.92.0.0/16")}
BINARIES = ("cri/berthd", "cri/pause/berth-pause", "shim/berth-shim", "runtime/berth", "cni/berth-bridge")
HTTPD = ("mkdir -p /www && echo pong > /www/ping && head -c {size} /dev/zero > /www/big && "
         f"exec httpd -f -p {PORT} -h /www")
TESTS = ("exec_true", "exec_bulk", "pf_seq", "pf_bulk")
F_SETPIPE_SZ = 1031
MAX_FAILURES = 3  # per daemon and test; then the test is no longer run for that daemon


class Failure(Exception):
    pass


def threads(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return None


def maps_library(pid, name):
    return name in open(f"/proc/{pid}/maps").read()


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def git_head():
    r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or None


def snapshot_build(build, work):
    """Copies the binaries berthd runs into work/build (same layout), so that a rebuild of
    `build` during the run changes nothing; make_daemons then uses the copy."""
    snap = os.path.join(work, "build")
    for rel in BINARIES:
        os.makedirs(os.path.dirname(os.path.join(snap, rel)), exist_ok=True)
        shutil.copy2(os.path.join(build, rel), os.path.join(snap, rel))
    return snap


class Stream:
    """One daemon with its pod and httpd container, and the four measurements."""

    def __init__(self, d, client, work, pf_bytes):
        self.d, self.pb2, self.rt, self.client, self.work, self.pf_bytes = d, d.pb2, d.rt, client, work, pf_bytes
        self.status_file = os.path.join(work, f"{d.name}.status")
        self.request_seq = os.path.join(work, "get-ping")
        self.request_bulk = os.path.join(work, "get-big")
        self.failures = {t: [] for t in TESTS}
        self.lost = []  # runs whose output arrived short with a successful status

    def setup(self):
        cfg = self.d.pod_config()
        cfg.linux.cgroup_parent = f"/{CGROUP_TOP}/{self.d.name}/{cfg.metadata.name}"
        self.pod_id = self.d.run_pod(cfg)
        self.cid = self.d.container(self.pod_id, cfg, ("sh", "-c", HTTPD.format(size=self.pf_bytes)))
        self.rt.StartContainer(self.pb2.StartContainerRequest(container_id=self.cid))

    def exec_sync(self, cmd, timeout=30):
        r = self.rt.ExecSync(self.pb2.ExecSyncRequest(container_id=self.cid, cmd=cmd, timeout=timeout))
        return r.exit_code, r.stdout, r.stderr

    def wait_httpd(self, timeout=60):
        """httpd answers inside the pod (checked with ExecSync, which is not a stream call)."""
        deadline = time.monotonic() + timeout
        while True:
            code, _, err = self.exec_sync(["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/ping"])
            if code == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.d.name}: httpd in the pod does not answer: {err[-500:]!r}")
            time.sleep(0.2)

    # ---- one client session ----------------------------------------------------------
    def run_client(self, args, stdin_path=None, stdout="null", timeout=120):
        """Runs spdy_client and reaps it with wait4. stdout: "null" (/dev/null), "file"
        (returned as bytes) or "count" (a pipe whose bytes a thread counts, returned as an
        int). -> (wall ms, client CPU ms, daemon CPU ms over the run, stdout). Raises
        Failure on a non-zero exit or a timeout."""
        out_path = os.path.join(self.work, f"{self.d.name}.out") if stdout == "file" else os.devnull
        err_path = os.path.join(self.work, f"{self.d.name}.err")
        counted = [0]
        with open(stdin_path or os.devnull, "rb") as i, open(out_path, "wb") as o, open(err_path, "wb") as e:
            c0 = cpu_ticks(self.d.proc.pid)
            t0 = time.perf_counter()
            p = subprocess.Popen([self.client, *args], stdin=i, stdout=subprocess.PIPE if stdout == "count" else o,
                                 stderr=e)
            reader = None
            if stdout == "count":
                fd = p.stdout.fileno()
                fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)

                def count():
                    while chunk := os.read(fd, 1 << 20):
                        counted[0] += len(chunk)
                reader = threading.Thread(target=count)
                reader.start()
            pidfd = os.pidfd_open(p.pid)
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            timed_out = not poller.poll(timeout * 1000)
            if timed_out:
                p.kill()
            os.close(pidfd)
            _, status, usage = os.wait4(p.pid, 0)
            wall = (time.perf_counter() - t0) * 1000
            daemon_cpu = (cpu_ticks(self.d.proc.pid) - c0) * 1000 / os.sysconf("SC_CLK_TCK")
            if reader:
                reader.join()
                p.stdout.close()
        p.returncode = os.waitstatus_to_exitcode(status)
        client_cpu = (usage.ru_utime + usage.ru_stime) * 1000
        if p.returncode != 0 or timed_out:
            err = open(err_path, "rb").read().decode(errors="replace")
            st = open(self.status_file, "rb").read() if args[0] == "exec" and os.path.exists(self.status_file) else b""
            raise Failure(f"spdy_client {args[0]} {'killed after a timeout' if timed_out else 'exit'} "
                          f"{p.returncode} after {wall:.0f} ms; stderr: {err[-1000:]!r}; status: {st[-500:]!r}")
        out = open(out_path, "rb").read() if stdout == "file" else counted[0] if stdout == "count" else None
        return wall, client_cpu, daemon_cpu, out

    def exec_url(self, cmd):
        t0 = time.perf_counter()
        url = self.rt.Exec(self.pb2.ExecRequest(container_id=self.cid, cmd=cmd, stdout=True, stderr=True)).url
        return url, (time.perf_counter() - t0) * 1000

    def pf_url(self):
        t0 = time.perf_counter()
        url = self.rt.PortForward(self.pb2.PortForwardRequest(pod_sandbox_id=self.pod_id, port=[PORT])).url
        return url, (time.perf_counter() - t0) * 1000

    def exec_true(self, check=False):
        url, rpc = self.exec_url(["true"])
        wall, ccpu, dcpu, out = self.run_client(["exec", url, "-status", self.status_file],
                                                stdout="file" if check else "null")
        if check and out != b"":
            raise Failure(f"exec true: output {out[:200]!r}")
        return {"rpc_ms": rpc, "client_ms": wall, "total_ms": rpc + wall, "client_cpu_ms": ccpu, "daemon_cpu_ms": dcpu}

    def exec_bulk(self, check=False):
        """The output is counted on every run (and compared in full in the preflight): a
        short count with a "Success" status is kept as a sample and reported as lost bytes."""
        url, rpc = self.exec_url(["head", "-c", str(EXEC_BULK), "/dev/zero"])
        wall, ccpu, dcpu, out = self.run_client(["exec", url, "-status", self.status_file],
                                                stdout="file" if check else "count")
        got = len(out) if check else out
        if check and out.count(0) != got:
            raise Failure(f"exec 64 MiB of zeros: {got - out.count(0)} non-zero bytes in the output")
        return {"rpc_ms": rpc, "client_ms": wall, "mb_s": EXEC_BULK / 1e6 / (wall / 1000), "client_cpu_ms": ccpu,
                "daemon_cpu_ms": dcpu, "lost_bytes": EXEC_BULK - got}

    def pf_seq(self, check=False):
        url, rpc = self.pf_url()
        wall, ccpu, dcpu, out = self.run_client(["portforward", url, str(PORT), str(SEQ_REQUESTS)], self.request_seq,
                                                stdout="file")
        if out.count(b"\r\n\r\npong\n") != SEQ_REQUESTS or b"error stream" in out:
            raise Failure(f"port-forward x{SEQ_REQUESTS}: {out.count(b'pong')} answers; output: {out[-600:]!r}")
        return {"rpc_ms": rpc, "client_ms": wall, "client_cpu_ms": ccpu, "daemon_cpu_ms": dcpu}

    def pf_bulk(self, check=False):
        """Checked on every run: the servers end a pair 1 s after the client half-closed
        its data stream, which spdy_client does right after the request, so a response
        still flowing then arrives cut short, with exit status 0."""
        url, rpc = self.pf_url()
        wall, ccpu, dcpu, out = self.run_client(["portforward", url, str(PORT)], self.request_bulk, stdout="file")
        head, _, body = out.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] or len(body) != self.pf_bytes \
                or b"error stream" in out or (check and body.count(0) != len(body)):
            raise Failure(f"port-forward GET /big: {len(body)} of {self.pf_bytes} bytes after {wall:.0f} ms; "
                          f"head {head[:200]!r}; tail {out[-120:]!r}")
        return {"rpc_ms": rpc, "client_ms": wall, "mb_s": self.pf_bytes / 1e6 / (wall / 1000), "client_cpu_ms": ccpu,
                "daemon_cpu_ms": dcpu}

    def run_test(self, t, phase, samples=None):
        """One run of test t; a failure is recorded (and printed) rather than raised. After
        MAX_FAILURES failures, or one in the preflight, the test is not run again."""
        fails = self.failures[t]
        if len(fails) >= MAX_FAILURES or any(f["phase"] == "preflight" for f in fails):
            return
        try:
            r = getattr(self, t)(check=phase == "preflight")
        except Failure as e:
            fails.append({"phase": phase, "error": str(e)})
            print(f"{self.d.name}: {phase} {t} FAILED: {e}", file=sys.stderr)
            return
        if r.get("lost_bytes"):
            self.lost.append({"phase": phase, "test": t, "lost_bytes": r["lost_bytes"]})
            print(f"{self.d.name}: {phase} {t}: output short by {r['lost_bytes']} bytes, status Success",
                  file=sys.stderr)
        if samples is not None:
            samples.setdefault(t, []).append(r)


def state(d):
    return {"memory": memory(d.proc.pid), "threads": threads(d.proc.pid),
            "libmicrohttpd_mapped": maps_library(d.proc.pid, "libmicrohttpd")}


def wait_for_load(max_load, timeout):
    if not max_load:
        return
    deadline = time.monotonic() + timeout
    while loadavg()[0] >= max_load:
        if time.monotonic() > deadline:
            print(f"load average still {loadavg()[0]:.2f} after {timeout} s; measuring anyway", file=sys.stderr)
            return
        print(f"waiting for the load average to drop below {max_load} (now {loadavg()[0]:.2f})", file=sys.stderr)
        time.sleep(20)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=25, help="samples per test and daemon (default 25)")
    ap.add_argument("--daemons", default="berthd,containerd")
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="berthd's build dir (copied at start)")
    ap.add_argument("--spdy-client", help="a built tests/cri/spdy_client (default: built into the work dir)")
    ap.add_argument("--pf-mib", type=int, default=PF_BULK_MIB,
                    help="size of the file fetched over port-forward, MiB (it must arrive within 1 s, see README)")
    ap.add_argument("--settle", type=float, default=5, help="idle seconds before the memory reading afterwards")
    ap.add_argument("--max-load", type=float, default=0,
                    help="before the measured rounds, wait until the 1-minute load average is below this")
    ap.add_argument("--load-wait", type=float, default=900, help="longest wait for --max-load, seconds")
    ap.add_argument("--out")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--log-level", default="warn", help="berthd's")
    args = ap.parse_args()

    def terminate(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, terminate)

    work = tempfile.mkdtemp(prefix="cri-stream-", dir="/var/tmp")
    reg = Registry(workdir=os.path.join(work, "registry"))
    daemons, streams, samples = [], [], {}
    results = {"method": __doc__, "samples_per_test": args.samples, "exec_bulk_bytes": EXEC_BULK,
               "pf_bulk_bytes": args.pf_mib * MIB,
               "seq_requests": SEQ_REQUESTS, "load_start": loadavg()}
    try:
        cri_runtime.BUILD = snapshot_build(args.build, work)
        results["versions"] = {
            "berthd": {"path": os.path.join(args.build, "cri", "berthd"),
                       "mtime": time.ctime(os.path.getmtime(os.path.join(args.build, "cri", "berthd"))),
                       "sha256": file_sha256(os.path.join(cri_runtime.BUILD, "cri", "berthd"))[:16],
                       "berth-shim sha256": file_sha256(os.path.join(cri_runtime.BUILD, "shim", "berth-shim"))[:16],
                       "repo HEAD": git_head()},
            "containerd": subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.strip(),
            "runc": subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
            "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip(),
            "kernel": os.uname().release, "cpus": os.cpu_count()}
        client = args.spdy_client or build_spdy_client(work)
        with open(os.path.join(work, "get-ping"), "wb") as f:
            f.write(b"GET /ping HTTP/1.0\r\n\r\n")
        with open(os.path.join(work, "get-big"), "wb") as f:
            f.write(b"GET /big HTTP/1.0\r\n\r\n")
        reg.start()
        oci_image.push(oci_image.build_image("busybox-all"), reg.addr, "library/busybox:latest")
        oci_image.push(oci_image.Image([oci_image.Layer(pause_tar(), "gzip")], cmd=["/pause"]), reg.addr,
                       "berth/pause:1")
        daemons += make_daemons(work, reg, args.daemons.split(","), args.log_level)
        for d in daemons:  # our own bridge and subnet, written over make_*'s
            short = "b" if d.name == "berthd" else "c"
            bridge, subnet = NETS[d.name]
            cni_conflist(os.path.join(work, d.name, "net.d", "10-bench.conflist"), f"strm-{short}", bridge, subnet,
                         os.path.join(work, d.name, "ipam"))
        for d in daemons:
            d.start()
            d.c.pull("busybox")
            d.pulled_at = time.monotonic()
            st = Stream(d, client, work, args.pf_mib * MIB)
            st.setup()
            streams.append(st)
        for st in streams:
            st.wait_httpd()
        # Steady state before the first stream call: berthd unmaps its pull libraries
        # UNLOAD_AFTER_PULL s after a pull (as cri_runtime.py waits for).
        wait = max(d.pulled_at for d in daemons) + UNLOAD_AFTER_PULL + 5 - time.monotonic()
        if wait > 0:
            print(f"waiting {wait:.0f} s for steady state after the pulls", file=sys.stderr)
            time.sleep(wait)
        wait_for_load(args.max_load, args.load_wait)
        results["before"] = {d.name: state(d) for d in daemons}
        for st in streams:  # unmeasured, output checked in full
            for t in TESTS:
                st.run_test(t, "preflight")
        samples = {d.name: {} for d in daemons}
        cpu0 = {d.name: cpu_ticks(d.proc.pid) for d in daemons}
        results["load_measured_start"] = loadavg()
        t0 = time.monotonic()
        for i in range(args.samples):
            for st in (streams if i % 2 == 0 else streams[::-1]):
                for t in TESTS:
                    st.run_test(t, "measured", samples[st.d.name])
            if (i + 1) % 5 == 0:
                print(f"sample {i + 1}/{args.samples} done", file=sys.stderr)
        results["measured_seconds"] = time.monotonic() - t0
        results["load_measured_end"] = loadavg()
        results["daemon_cpu_s"] = {d.name: (cpu_ticks(d.proc.pid) - cpu0[d.name]) / os.sysconf("SC_CLK_TCK")
                                   for d in daemons}
        time.sleep(args.settle)
        results["after"] = {d.name: state(d) for d in daemons}
        for st in streams:  # what is left running in the container (exec'd processes must be gone)
            code, out, _ = st.exec_sync(["ps", "-o", "pid,args"])
            results["after"][st.d.name]["container_processes"] = [
                line for line in out.decode(errors="replace").strip().split("\n")[1:] if "ps -o pid,args" not in line]
    finally:
        stop_daemons(daemons, reg)
        for bridge, _ in NETS.values():
            subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)
        remove_cgroup_tree(CGROUP_TOP)
        if args.keep_tmp:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            subprocess.run(["sh", "-c", f"grep -o ' {work}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"],
                           check=False)
            shutil.rmtree(work, ignore_errors=True)

    results["failures"] = {st.d.name: {t: f for t, f in st.failures.items() if f} for st in streams}
    results["short_output"] = {st.d.name: st.lost for st in streams}
    ok = report(streams, samples, results, args)
    return 0 if ok else 1


def report(streams, samples, results, args):
    names = [st.d.name for st in streams]
    both = len(names) == 2

    def med(name, test, key):
        xs = [s[key] for s in samples.get(name, {}).get(test, [])]
        return statistics.median(xs) if xs else None

    def mean(name, test, key):  # CPU from /proc is counted in 10 ms ticks: means, not medians
        xs = [s[key] for s in samples.get(name, {}).get(test, [])]
        return statistics.mean(xs) if xs else None

    pf = f"port-forward: GET {args.pf_mib} MiB"
    rows = [
        ("exec true: Exec RPC + client session (ms)", lambda n: med(n, "exec_true", "total_ms"), "{:.1f}"),
        ("exec true: Exec RPC alone (ms)", lambda n: med(n, "exec_true", "rpc_ms"), "{:.2f}"),
        ("exec true: daemon CPU, mean (ms)", lambda n: mean(n, "exec_true", "daemon_cpu_ms"), "{:.1f}"),
        ("exec 64 MiB to stdout (MB/s)", lambda n: med(n, "exec_bulk", "mb_s"), "{:.0f}"),
        ("exec 64 MiB: daemon CPU, mean (ms)", lambda n: mean(n, "exec_bulk", "daemon_cpu_ms"), "{:.0f}"),
        ("exec 64 MiB: client CPU, median (ms)", lambda n: med(n, "exec_bulk", "client_cpu_ms"), "{:.0f}"),
        (f"port-forward: {SEQ_REQUESTS} GETs, one connection (ms)", lambda n: med(n, "pf_seq", "client_ms"),
         "{:.1f}"),
        (f"{pf} (MB/s)", lambda n: med(n, "pf_bulk", "mb_s"), "{:.0f}"),
        (f"{pf}: daemon CPU, mean (ms)", lambda n: mean(n, "pf_bulk", "daemon_cpu_ms"), "{:.0f}"),
        ("daemon PSS before the 1st stream call (MiB)", lambda n: results["before"][n]["memory"]["pss"] / MIB, "{:.1f}"),
        ("daemon PSS afterwards, idle (MiB)", lambda n: results["after"][n]["memory"]["pss"] / MIB, "{:.1f}"),
        ("daemon RSS before / afterwards (MiB)", None, None),
        ("daemon threads before / afterwards", None, None),
        ("daemon CPU during the samples (s)", lambda n: results["daemon_cpu_s"][n], "{:.2f}"),
    ]
    la = results
    print(f"\nCRI streaming over SPDY (tests/cri/spdy_client), {args.samples} samples per test and daemon, "
          f"daemon order alternating; medians")
    print(f"load average: start {la['load_start'][0]:.2f}, measured phase {la['load_measured_start'][0]:.2f} -> "
          f"{la['load_measured_end'][0]:.2f} (1 min)")
    v = results.get("versions", {})
    if v:
        b = v["berthd"]
        print(f"berthd {b['path']} ({b['mtime']}, sha256 {b['sha256']}, repo at {b['repo HEAD']}); {v['containerd']}")
    w = 46
    print(f"{'':<{w}}" + "".join(f"{n:>14}" for n in names) + ("   ratio" if both else ""))
    table = {}
    for label, fn, fmt in rows:
        if fn is None:
            if "RSS" in label:
                cells = [f"{results['before'][n]['memory']['rss'] / MIB:.1f} / {results['after'][n]['memory']['rss'] / MIB:.1f}"
                         for n in names]
            else:
                cells = [f"{results['before'][n]['threads']} / {results['after'][n]['threads']}" for n in names]
            print(f"{label:<{w}}" + "".join(f"{c:>14}" for c in cells))
            continue
        vals = [fn(n) for n in names]
        table[label] = dict(zip(names, vals))
        line = f"{label:<{w}}" + "".join(f"{fmt.format(v) if v is not None else 'FAILED':>14}" for v in vals)
        if both and None not in vals and vals[1]:
            line += f"   {vals[0] / vals[1]:.2f}"
            table[label]["ratio"] = vals[0] / vals[1]
        print(line)
    print("ratio = berthd / containerd: < 1 is better for times and memory, > 1 is better for MB/s")
    for n in names:
        b, a = results["before"][n], results["after"][n]
        print(f"  {n}: libmicrohttpd mapped before/after: {b['libmicrohttpd_mapped']}/{a['libmicrohttpd_mapped']}; "
              f"container processes after: {'; '.join(p.strip() for p in a.get('container_processes', []))}")
    ok = True
    for n, fails in results["failures"].items():
        for t, fs in fails.items():
            ok = False
            print(f"FAILED {n} {t}: {len(fs)} failure(s); first ({fs[0]['phase']}): {fs[0]['error']}")
    for n, lost in results["short_output"].items():
        if lost:
            ok = False
            runs = len(samples.get(n, {}).get("exec_bulk", [])) + 1
            sizes = sorted({x["lost_bytes"] for x in lost})
            print(f"SHORT OUTPUT {n} exec 64 MiB: {len(lost)} of {runs} runs (preflight included) ended with status "
                  f"Success but lacked {', '.join(str(x) for x in sizes)} bytes")
    results["table"] = table
    results["raw"] = samples
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return ok


if __name__ == "__main__":
    sys.exit(main())
