#!/usr/bin/python3
"""berthlet benchmark: manifest written -> container running / pod Ready, for 1 pod and
for N pods at once, against the runtime's own floor (the same sandbox + container started
by direct CRI calls); then berthlet's RSS and CPU while idle with N pods.

Started by bench/berthlet.sh inside tests/agent/run.sh's world (AGENT_ROOT etc.)."""
import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "agent"))
import agent_lib as L  # noqa: E402

ROOT = Path(os.environ["AGENT_ROOT"])
TAG = os.environ["AGENT_TAG"]
BRIDGE = os.environ["AGENT_BRIDGE"]
CGROUP_ROOT = os.environ["AGENT_CGROUP_ROOT"]  # removed by run.sh's teardown
CLK_TCK = os.sysconf("SC_CLK_TCK")


def ms(x):
    return round(x * 1000, 1)


def pod_doc(name):
    return L.pod_manifest(name, [L.container("app", L.SLEEPER)])


def wait_running(cri, names, deadline=60):
    """Polls the runtime (every 5 ms) until a running container exists for each pod name."""
    want = {f"{n}-{L.NODE}" for n in names}
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = {c.labels.get("io.kubernetes.pod.name") for c in cri.running()}
        if want <= got:
            return time.monotonic()
        time.sleep(0.005)
    raise RuntimeError(f"pods not running after {deadline}s: {sorted(want)}")


def wait_ready(b, names, deadline=60):
    want = {f"{n}-{L.NODE}" for n in names}
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready = {p["metadata"]["name"] for p in b.pods() if L.condition(p, "Ready")}
        if want <= ready:
            return time.monotonic()
        time.sleep(0.005)
    raise RuntimeError("pods not Ready")


def berthlet_round(b, cri, names):
    t0 = time.monotonic()
    for n in names:
        b.write(f"{n}.yaml", pod_doc(n))
    t_run = wait_running(cri, names)
    t_ready = wait_ready(b, names)
    return t_run - t0, t_ready - t0


def remove_all(b, cri):
    for f in b.manifests.iterdir():
        f.unlink()
    L.wait_for(lambda: b.pods() == [] and cri.sandboxes() == [], timeout=120, what="pods removed")


def direct_pod(cri, name):
    """The runtime's own time for one pod: RunPodSandbox + CreateContainer + StartContainer."""
    pb = cri.pb
    uid = uuid.uuid4().hex
    meta = pb.PodSandboxMetadata(name=name, uid=uid, namespace="bench")
    sc = pb.PodSandboxConfig(metadata=meta, hostname=name, log_directory=str(ROOT / "direct-logs" / uid),
                             linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{CGROUP_ROOT}/direct/pod{uid}"),
                             labels={"bench": "direct"})
    t0 = time.monotonic()
    sid = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sc), timeout=60).pod_sandbox_id
    cc = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image="busybox:latest"),
                            command=["sh", "-c", L.SLEEPER], log_path="app/0.log")
    cid = cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc, sandbox_config=sc),
                                 timeout=60).container_id
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    return time.monotonic() - t0


def direct_round(cri, count):
    times = [None] * count
    t0 = time.monotonic()

    def one(i):
        times[i] = direct_pod(cri, f"direct{i}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.monotonic() - t0
    cri.remove_everything()
    return total


def start_world(subnet):
    """A local registry with busybox and the pause image, and a containerd on our bridge
    (subnet): (registry, containerd, CRI client)."""
    reg = L.Registry(workdir=str(ROOT / "registry"))
    reg.start()
    L.oci_image.push(L.oci_image.build_image("busybox"), reg.addr, "library/busybox:latest")
    pause = L.oci_image.Image([L.oci_image.Layer(L.oci_image.busybox_tar(), "gzip")], cmd=["/bin/sleep", "2147483647"])
    L.oci_image.push(pause, reg.addr, "berth/pause:1")
    cni = ROOT / "cni" / "net.d"
    L.write_cni_conf(cni, BRIDGE, subnet, ROOT / "cni" / "ipam")
    ctd = L.Containerd(ROOT / "containerd", reg.addr, cni, "docker.io/berth/pause:1")
    ctd.start()
    cri = L.Cri(ctd.sock, ROOT / "pycri")
    ctd.wait_ready(cri)
    return reg, ctd, cri


def proc_cpu_rss(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
    hwm = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
    threads = int(next(l for l in status.splitlines() if l.startswith("Threads:")).split()[1])
    return cpu, rss, hwm, threads


def rss_split(pid):
    """(anonymous KiB, file-backed KiB, proportional set size KiB)"""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    get = lambda key: int(next(l for l in status if l.startswith(key)).split()[1])  # noqa: E731
    pss = next(l for l in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines() if l.startswith("Pss:"))
    return get("RssAnon:"), get("RssFile:"), int(pss.split()[1])


def med(xs):
    return ms(statistics.median(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7, help="rounds per measurement (medians)")
    ap.add_argument("--pods", type=int, default=20)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    ap.add_argument("--out")
    args = ap.parse_args()

    reg, ctd, cri = start_world("10.231.78.0/24")
    b = L.Berthlet(ROOT / "berthlet", ctd.sock, CGROUP_ROOT)
    out = {"runs": args.runs, "pods": args.pods}
    try:
        b.start()
        # warm-up: image pulled, sandbox image unpacked, caches hot
        berthlet_round(b, cri, ["warm"])
        remove_all(b, cri)
        direct_round(cri, 1)

        one_direct, one_run, one_ready = [], [], []
        many_direct, many_run, many_ready = [], [], []
        for r in range(args.runs):
            one_direct.append(direct_round(cri, 1))
            run, ready = berthlet_round(b, cri, [f"one{r}"])
            one_run.append(run)
            one_ready.append(ready)
            remove_all(b, cri)
        for r in range(max(1, args.runs // 2)):
            many_direct.append(direct_round(cri, args.pods))
            names = [f"m{r}x{i}" for i in range(args.pods)]
            run, ready = berthlet_round(b, cri, names)
            many_run.append(run)
            many_ready.append(ready)
            if r + 1 < max(1, args.runs // 2):
                remove_all(b, cri)
        out["one_pod_ms"] = {"runtime_floor": med(one_direct), "berthlet_running": med(one_run),
                             "berthlet_ready": med(one_ready),
                             "berthlet_overhead": ms(statistics.median(one_run) - statistics.median(one_direct))}
        out[f"{args.pods}_pods_ms"] = {"runtime_floor": med(many_direct), "berthlet_running": med(many_run),
                                       "berthlet_ready": med(many_ready),
                                       "berthlet_overhead": ms(statistics.median(many_run) - statistics.median(many_direct))}
        # idle with N pods: the last round's pods are still running
        time.sleep(3)
        pid = b.proc.pid
        c0, _, _, _ = proc_cpu_rss(pid)
        ctd0, _, _, _ = proc_cpu_rss(ctd.proc.pid)
        t0 = time.monotonic()
        time.sleep(args.idle)
        c1, rss, hwm, threads = proc_cpu_rss(pid)
        ctd1, ctd_rss, _, _ = proc_cpu_rss(ctd.proc.pid)
        dt = time.monotonic() - t0
        anon, filed, pss = rss_split(pid)
        out["idle"] = {"berthlet_rss_anon_mib": round(anon / 1024, 1), "berthlet_rss_file_mib": round(filed / 1024, 1),
                       "berthlet_pss_mib": round(pss / 1024, 1),"pods": len(b.pods()), "seconds": round(dt, 1),
                       "berthlet_cpu_percent": round(100 * (c1 - c0) / dt, 3),
                       "berthlet_rss_mib": round(rss / 1024, 1), "berthlet_peak_rss_mib": round(hwm / 1024, 1),
                       "berthlet_threads": threads,
                       "containerd_cpu_percent": round(100 * (ctd1 - ctd0) / dt, 3),
                       "containerd_rss_mib": round(ctd_rss / 1024, 1)}
        remove_all(b, cri)
    finally:
        b.stop()
        cri.remove_everything()
        ctd.stop()
        reg.stop()
    print(json.dumps(out, indent=1))
    print("\nberthlet vs the runtime's own pod start (medians, ms):")
    for key in ("one_pod_ms", f"{args.pods}_pods_ms"):
        o = out[key]
        print(f"  {key:12} runtime floor {o['runtime_floor']:8.1f}  berthlet running {o['berthlet_running']:8.1f}"
              f"  Ready {o['berthlet_ready']:8.1f}  overhead {o['berthlet_overhead']:7.1f}")
    i = out["idle"]
    print(f"  idle with {i['pods']} pods over {i['seconds']} s: berthlet CPU {i['berthlet_cpu_percent']}% of a core, "
          f"RSS {i['berthlet_rss_mib']} MiB (anon {i['berthlet_rss_anon_mib']}, file {i['berthlet_rss_file_mib']}, "
          f"PSS {i['berthlet_pss_mib']}; peak {i['berthlet_peak_rss_mib']}), {i['berthlet_threads']} threads; "
          f"containerd CPU {i['containerd_cpu_percent']}%, RSS {i['containerd_rss_mib']} MiB")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
