#!/usr/bin/python3
"""Status sinks bench (bench/status-sinks.sh): N pods started at once by a berthlet with a
file sink, an http sink whose receiver is a Python webhook on loopback and an etcd sink to a
3-member etcd cluster on loopback.

- delay: for each pod, the webhook's arrival of the first pod status with its container
  running, less the moment the runtime first listed that container as running (polled every
  10 ms through the CRI): berthlet's relist, status computation and the sink's delivery.
  For etcd, the arrival is the first event of `etcdctl watch --prefix` (JSON, one line per
  event, timestamped as read) whose pod has its container running.
- kube_delay: the same for the kubernetes sink, to a real kube-apiserver v1.19 (with etcd,
  tests/agent/kube_lib.py): the moment a watch on the node's pods shows the mirror pod's
  container running (its mirror pod created and its status patched). Left out, and said
  so, when the kube-apiserver binary is absent.
- drain: with the receiver, every etcd member and the API server down, every pod is
  restarted (manifest touched with a new annotation) so each sink holds N undelivered
  states; the receiver and the cluster come back (together: both sinks drain at once, each
  on its own thread), then the API server, and the time to deliver them all gives the
  updates per second one sink sustains (etcd and kubernetes: berthlet's delivered counter
  and queue depth, polled every 20 ms, until the queue is empty).
- idle: berthlet's CPU and RSS over --idle seconds with the N pods, adopted by a fresh
  berthlet without sinks and then by one with both sinks on.

Started inside tests/agent/run.sh's world (AGENT_ROOT etc.)."""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "agent"))
import agent_lib as L  # noqa: E402
import kube_lib as K  # noqa: E402
from berthlet_bench import CLK_TCK, proc_cpu_rss, remove_all, rss_split, start_world  # noqa: E402
from etcd_lib import EtcdCluster  # noqa: E402

ROOT = Path(os.environ["AGENT_ROOT"])
CGROUP_ROOT = os.environ["AGENT_CGROUP_ROOT"]


def pct(xs, q):
    xs = sorted(xs)
    return round(1000 * xs[min(len(xs) - 1, int(q * len(xs)))], 1)


def running_body(body):
    if body["kind"] != "pod":
        return None
    cs = body["object"]["status"].get("containerStatuses", [])
    return body["object"]["metadata"]["name"] if cs and "running" in cs[0]["state"] else None


class EtcdWatch:
    """etcdctl watch --prefix in JSON: when each pod's key first held a running container."""

    def __init__(self, cluster, prefix):
        self.running_at = {}
        self.proc = subprocess.Popen(["etcdctl", "--endpoints", ",".join(cluster.urls), "watch", "--prefix", prefix,
                                      "-w", "json"], env=dict(os.environ, ETCDCTL_API="3"),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            at = time.monotonic()
            for ev in json.loads(line).get("Events") or []:
                if "value" in ev["kv"]:
                    name = running_body({"kind": "pod", "object": json.loads(base64.b64decode(ev["kv"]["value"]))})
                    if name:
                        self.running_at.setdefault(name, at)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def sink_progress(b, sink):
    """(items the sink delivered, of every kind; items it holds)."""
    text = b.get("/metrics")
    done = sum(int(n) for n in re.findall(
        r'berthlet_status_sink_deliveries_total\{sink="%s",kind="\w+",result="delivered"\} (\d+)' % sink, text))
    depth = re.search(r'berthlet_status_sink_queue_depth\{sink="%s"\} (\d+)' % sink, text)
    return done, int(depth.group(1)) if depth else 0


def drain_rate(b, sink, before, held):
    """From the first delivery seen to the empty queue (the back-off wait before the first
    delivery is not throughput): items, seconds, items per second."""
    first, end = None, time.monotonic() + 120
    while time.monotonic() < end:
        n, depth = sink_progress(b, sink)
        if first is None and n > before:
            first = (time.monotonic(), n)
        if first is not None and depth == 0:
            break
        time.sleep(0.02)
    last = time.monotonic()
    assert first is not None and depth == 0, f"the {sink} sink's backlog was not delivered"
    return {"items": n - before, "held_at_start": held, "seconds": round(last - first[0], 2),
            "updates_per_second": round((n - first[1]) / max(last - first[0], 1e-6), 1)}


def thread_cpu(pid):
    """thread name -> CPU seconds, summed over the threads of that name."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[comm] = out.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def idle(b, seconds):
    time.sleep(3)
    c0, _, _, _ = proc_cpu_rss(b.proc.pid)
    per0 = thread_cpu(b.proc.pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    c1, rss, hwm, threads = proc_cpu_rss(b.proc.pid)
    per1 = thread_cpu(b.proc.pid)
    dt = time.monotonic() - t0
    anon, file, pss = rss_split(b.proc.pid)
    by_thread = {k: round(100 * (v - per0.get(k, 0.0)) / dt, 3) for k, v in per1.items()}
    return {"pods": len(b.pods()), "seconds": round(dt, 1), "berthlet_cpu_percent": round(100 * (c1 - c0) / dt, 3),
            "cpu_percent_by_thread": {k: v for k, v in sorted(by_thread.items(), key=lambda x: -x[1]) if v > 0},
            "berthlet_rss_mib": round(rss / 1024, 1), "berthlet_peak_rss_mib": round(hwm / 1024, 1),
            "rss_anon_mib": round(anon / 1024, 1), "rss_file_mib": round(file / 1024, 1),
            "pss_mib": round(pss / 1024, 1), "berthlet_threads": threads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--out")
    args = ap.parse_args()

    reg, ctd, cri = start_world("10.231.79.0/24")
    rx = L.Receiver()
    port = L.free_port()
    rx.start(port)
    cluster = EtcdCluster(ROOT / "etcd")
    cluster.start_all()
    watch = EtcdWatch(cluster, f"/bench/pods/{L.NODE}/")
    b = L.Berthlet(ROOT / "berthlet", ctd.sock, CGROUP_ROOT)
    api = kube_watch = None
    kube_sink = ""
    if K.apiserver_available():
        api = K.KubeApiServer(ROOT / "kube-apiserver")
        kube_sink = api.sink_config("kube", "  maxBackoff: 1s\n")
    else:
        print(f"kube-apiserver not found at {K.APISERVER}: the kubernetes sink is left out", file=sys.stderr)
    cfg = ROOT / "berthlet.yaml"
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstatusSinks:\n"
                   f"- name: local\n  type: file\n  directory: {ROOT / 'status'}\n"
                   f"- name: hook\n  type: http\n  urls: [http://127.0.0.1:{port}/]\n  maxBackoff: 1s\n"
                   f"- name: etcd\n  type: etcd\n  endpoints: [{', '.join(cluster.urls)}]\n  prefix: /bench\n"
                   "  maxBackoff: 1s\n" + kube_sink)
    out = {"pods": args.pods}
    try:
        if api:
            api.start()
        b.start("--config", str(cfg))
        b.write("warm.yaml", L.pod_manifest("warm", [L.container("app", L.SLEEPER)]))
        b.wait_pod("warm", lambda p: L.running(p, "app"))
        remove_all(b, cri)
        if api:
            kube_watch = K.PodWatch(api)
        names = [f"s{i}" for i in range(args.pods)]
        for n in names:
            b.write(f"{n}.yaml", L.pod_manifest(n, [L.container("app", L.SLEEPER)]))
        seen = {}  # pod name -> when the runtime first listed its container running
        end = time.monotonic() + 300
        while len(seen) < len(names) and time.monotonic() < end:
            now = time.monotonic()
            for c in cri.running():
                seen.setdefault(c.labels.get("io.kubernetes.pod.name"), now)
            time.sleep(0.01)
        want = {f"{n}-{L.NODE}" for n in names}
        L.wait_for(lambda: want <= {running_body(r.body) for r in list(rx.requests)}, timeout=120,
                   what="every pod's running status at the webhook")
        arrived = {}
        for r in rx.requests:
            name = running_body(r.body)
            if name:
                arrived.setdefault(name, r.at)
        delays = [max(0.0, arrived[f"{n}-{L.NODE}"] - seen[f"{n}-{L.NODE}"]) for n in names]
        out["delay_ms"] = {"p50": pct(delays, 0.5), "p99": pct(delays, 0.99), "max": round(1000 * max(delays), 1)}
        L.wait_for(lambda: want <= set(watch.running_at), timeout=120, what="every pod's running status in etcd")
        delays = [max(0.0, watch.running_at[f"{n}-{L.NODE}"] - seen[f"{n}-{L.NODE}"]) for n in names]
        out["etcd_delay_ms"] = {"p50": pct(delays, 0.5), "p99": pct(delays, 0.99), "max": round(1000 * max(delays), 1)}
        watch.stop()
        if kube_watch:
            L.wait_for(lambda: want <= set(kube_watch.running_at), timeout=120,
                       what="every mirror pod running at the API server")
            kd = [max(0.0, kube_watch.running_at[f"{n}-{L.NODE}"] - seen[f"{n}-{L.NODE}"]) for n in names]
            out["kube_delay_ms"] = {"p50": pct(kd, 0.5), "p99": pct(kd, 0.99), "max": round(1000 * max(kd), 1)}
            kube_watch.stop()

        # Drain: N undelivered pod states (each pod's metadata changes), then the receiver is back.
        rx.stop(port)
        cluster.stop()
        if api:
            api.stop()
        for n in names:
            doc = L.pod_manifest(n, [L.container("app", L.SLEEPER)])
            doc["metadata"]["labels"] = {"round": "2"}
            b.write(f"{n}.yaml", doc)
        L.wait_for(lambda: all(p["metadata"].get("labels", {}).get("round") == "2" and L.running(p, "app")
                               for p in b.pods() if p["metadata"]["name"].startswith("s")) and
                   len(b.pods()) == len(names), timeout=300, interval=0.5, what="pods restarted")
        # What the sink now holds for them: states replaced in place, one per pod.
        time.sleep(1)
        with rx.lock:
            rx.requests.clear()
        etcd_before, backlog = sink_progress(b, "etcd")
        if api:
            kube_before, kube_backlog = sink_progress(b, "kube")
        rx.start(port)
        for i in range(3):
            cluster.start(i)
        out["etcd_drain"] = drain_rate(b, "etcd", etcd_before, backlog)

        def drained():
            with rx.lock:
                got = {r.body["object"]["metadata"]["uid"] for r in rx.requests if r.body["kind"] == "pod"}
            return len(got & {p["metadata"]["uid"] for p in b.pods()}) >= len(names)
        L.wait_for(drained, timeout=120, interval=0.01, what="the backlog delivered")
        with rx.lock:
            sent, first, last = len(rx.requests), rx.requests[0].at, rx.requests[-1].at
        # From the first delivery to the last: the back-off wait before the first is not throughput.
        out["drain"] = {"items": sent, "seconds": round(last - first, 2),
                        "updates_per_second": round((sent - 1) / max(last - first, 1e-6), 1)}
        if api:
            # The API server (and its etcd) comes back after the others: its sink's backlog
            # drains alone, a mirror pod's deletion, creation and status patch per pod.
            api.start()
            out["kube_drain"] = drain_rate(b, "kube", kube_before, kube_backlog)
        # Idle: the same pods adopted by a fresh berthlet without sinks, then by one with both.
        for key, extra in (("idle_without_sinks", ()), ("idle_with_sinks", ("--config", str(cfg)))):
            b.stop()
            b.start(*extra)
            L.wait_for(lambda: len(b.pods()) == len(names) and all(L.running(p, "app") for p in b.pods()),
                       timeout=120, what="pods adopted")
            out[key] = idle(b, args.idle)
    finally:  # the pods go through the CRI: removing 100 through berthlet on a loaded machine lost the figures
        print("figures:", json.dumps(out), file=sys.stderr)  # also those of a run cut short
        b.stop()
        cri.remove_everything()
        rx.stop_all()
        watch.stop()
        cluster.stop()
        if kube_watch:
            kube_watch.stop()
        if api:
            api.stop()
        ctd.stop()
        reg.stop()
    print(json.dumps(out, indent=1))
    d, r, i, o = out["delay_ms"], out["drain"], out["idle_with_sinks"], out["idle_without_sinks"]
    ed, er = out["etcd_delay_ms"], out["etcd_drain"]
    print(f"\n{args.pods} pods, http sink: running in the runtime -> at the webhook p50 {d['p50']} ms, p99 {d['p99']} ms;"
          f" backlog of {r['items']} delivered at {r['updates_per_second']}/s;\n"
          f"etcd sink (3 members): running in the runtime -> key changed p50 {ed['p50']} ms, p99 {ed['p99']} ms;"
          f" backlog of {er['items']} delivered at {er['updates_per_second']}/s;\n"
          f"idle with file + http + etcd sinks: CPU {i['berthlet_cpu_percent']}% of a core, RSS {i['berthlet_rss_mib']} MiB;"
          f" without sinks: CPU {o['berthlet_cpu_percent']}%, RSS {o['berthlet_rss_mib']} MiB")
    if "kube_delay_ms" in out:
        k = out["kube_delay_ms"]
        print(f"kubernetes sink: running in the runtime -> mirror pod running at kube-apiserver (watch) "
              f"p50 {k['p50']} ms, p99 {k['p99']} ms, max {k['max']} ms (the idle figure with sinks includes it)")
    if "kube_drain" in out:
        kd = out["kube_drain"]
        print(f"kubernetes sink: backlog of {kd['items']} delivered at {kd['updates_per_second']}/s")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
