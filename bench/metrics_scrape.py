#!/usr/bin/python3
"""Scrape time of berthd's /metrics vs containerd 1.6's /v1/metrics, 100 running pods each.

Both daemons run side by side (bench/cri_runtime.py's set-up: own roots, bridges, the same
local registry and CNI chain), each with a loopback metrics address. After `--pods` pods of
one running container each, `--scrapes` GETs go over one keep-alive HTTP connection to
berthd (the way Prometheus scrapes), `--peer-scrapes` to containerd (its scrape reads every
container's cgroup: about a second each with 100 pods); the time is client-side, from
sending the request to the last byte of the body. Every berthd scrape is also parsed strictly once
(tests/lib/prom_text.py) to check the pod count it reports. Target: berthd median < 1 ms.
Run through bench/metrics-scrape.sh.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import cri_runtime as cr  # noqa: E402
import oci_image  # noqa: E402
import prom_text  # noqa: E402
from registry import Registry  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_metrics_address(daemon, port):
    cfg = daemon.cmd[daemon.cmd.index("--config") + 1]
    text = open(cfg).read()
    if daemon.name == "containerd":
        text = text.replace('[metrics]\n  address = ""', f'[metrics]\n  address = "127.0.0.1:{port}"')
        daemon.metrics_path = "/v1/metrics"
    else:
        text += f'\n[metrics]\naddress = "127.0.0.1:{port}"\n'
        daemon.metrics_path = "/metrics"
    open(cfg, "w").write(text)
    daemon.metrics_port = port


def percentile(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def scrape_times(d, n):
    """(client-side ms per scrape, body bytes, last body, daemon CPU ms per scrape)"""
    conn = http.client.HTTPConnection("127.0.0.1", d.metrics_port, timeout=10)
    times, size = [], 0
    for i in range(n + 10):  # 10 warm-up scrapes
        if i == 10:
            ticks = cr.cpu_ticks(d.proc.pid)
        t0 = time.perf_counter()
        conn.request("GET", d.metrics_path)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, (d.name, r.status)
        size = len(body)
    cpu_ms = (cr.cpu_ticks(d.proc.pid) - ticks) * 1000 / os.sysconf("SC_CLK_TCK") / n
    conn.close()
    return times[10:], size, body.decode(), cpu_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--peer-scrapes", type=int, default=30)
    ap.add_argument("--daemons", default="berthd,containerd")
    ap.add_argument("--out")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="metrics-scrape-", dir="/var/tmp")
    reg = Registry(workdir=os.path.join(work, "registry"))
    daemons, results = [], {}
    try:
        reg.start()
        oci_image.push(oci_image.build_image("busybox-all"), reg.addr, "library/busybox:latest")
        pause = oci_image.Layer(cr.pause_tar(), "gzip")
        oci_image.push(oci_image.Image([pause], cmd=["/pause"]), reg.addr, "berth/pause:1")
        daemons += cr.make_daemons(work, reg, args.daemons.split(","), "warn")
        for d in daemons:
            add_metrics_address(d, free_port())
            d.start()
            d.c.pull("busybox")
            for i in range(args.pods):
                cfg = d.pod_config(d.pb2.CONTAINER)
                pod_id = d.run_pod(cfg)
                cid = d.container(pod_id, cfg, ("sleep", "100000"))
                d.rt.StartContainer(d.pb2.StartContainerRequest(container_id=cid))
            print(f"{d.name}: {args.pods} pods running", file=sys.stderr)
        time.sleep(2)
        for d in daemons:
            times, size, text, cpu_ms = scrape_times(d, args.scrapes if d.name == "berthd" else args.peer_scrapes)
            results[d.name] = {"median_ms": statistics.median(times), "p99_ms": percentile(times, 0.99),
                               "max_ms": max(times), "cpu_ms": cpu_ms, "bytes": size, "scrapes": len(times)}
            if d.name == "berthd":
                fams = prom_text.parse(text)
                ready = prom_text.value(fams, "berthd_pod_sandboxes", state="ready")
                running = prom_text.value(fams, "berthd_containers", state="running")
                assert ready == args.pods and running == args.pods, (ready, running)
                results[d.name]["series"] = sum(len(f["samples"]) for f in fams.values())
            print(f"{d.name}: {results[d.name]}", file=sys.stderr)
    finally:
        cr.stop_daemons(daemons, reg)
        for b in ("bt-bench-b", "bt-bench-c"):
            subprocess.run(["ip", "link", "del", b], stderr=subprocess.DEVNULL)
        cr.remove_cgroup_tree("berth-bench")
        subprocess.run(["sh", "-c", f"grep -o ' {work}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"],
                       check=False)
        shutil.rmtree(work, ignore_errors=True)

    print(f"metrics scrape, {args.pods} running pods, over one keep-alive connection")
    print("(client-side times; daemon CPU = its user + system time per scrape, 10 ms ticks averaged)")
    print(f"{'daemon':<12}{'scrapes':>8}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}{'CPU ms':>8}{'bytes':>9}")
    for name, r in results.items():
        print(f"{name:<12}{r['scrapes']:>8}{r['median_ms']:>11.3f}{r['p99_ms']:>9.3f}{r['max_ms']:>9.3f}"
              f"{r['cpu_ms']:>8.3f}{r['bytes']:>9}")
    if "berthd" in results and "containerd" in results:
        print(f"berthd/containerd median: {results['berthd']['median_ms'] / results['containerd']['median_ms']:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
