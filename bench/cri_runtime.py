#!/usr/bin/python3
"""RuntimeService latency, relist cost, memory and idle CPU: berthd vs containerd 1.6.

Both daemons run side by side, each with its own root, state, socket, bridge and subnet,
the same CNI chain (berth-bridge + portmap), the same local registry and the same Python
gRPC client. containerd runs runc (its default); its sandbox image holds berth-pause.
Samples are taken as critest's benchmarks take them (pkg/benchmark): pod lifecycle
RunPodSandbox / PodSandboxStatus / StopPodSandbox / RemovePodSandbox on a default pod;
container lifecycle CreateContainer / StartContainer / ContainerStatus / StopContainer /
RemoveContainer of busybox `top` in a pod of its own. Rounds alternate the daemon order.
Run through bench/cri-runtime.sh. Quote medians and ratios from one run only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "cri"))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import grpc  # noqa: E402

import oci_image  # noqa: E402
from containerd_config import daemon_env, private_config  # noqa: E402
from benchlib import memory, stop_process  # noqa: E402
from cri_client import CriClient  # noqa: E402
from registry import Registry  # noqa: E402

BUILD = os.path.join(REPO, "build")
MIB = 1024 * 1024
UNLOAD_AFTER_PULL = 30  # berthd closes its pull libraries this long after a pull (cri/image/image_store.hpp)


def children_named(names):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            comm = open(f"/proc/{p}/comm").read().strip()
        except OSError:
            continue
        if comm in names:
            out.append(int(p))
    return out


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime


class Daemon:
    def __init__(self, name, cmd, sock, log, env=None):
        self.name, self.cmd, self.sock, self.log, self.env = name, cmd, sock, log, env
        self.proc = None

    def start(self):
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            if os.path.exists(self.sock):
                try:
                    self.c = CriClient(self.sock, timeout=600)
                    self.c.version(timeout=2)
                    break
                except grpc.RpcError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not serve; see {self.log}")
            time.sleep(0.05)
        self.pb2, self.rt = self.c.pb2, self.c.runtime

    def stop(self):
        stop_process(self.proc, 60)

    # ---- CRI calls -------------------------------------------------------------------
    def pod_config(self, pid_mode=None, name=None):
        pb2 = self.pb2
        name = name or "bench-" + uuid.uuid4().hex[:12]
        cfg = pb2.PodSandboxConfig(metadata=pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="bench",
                                                                   attempt=1))
        cfg.linux.cgroup_parent = f"/berth-bench/{self.name}/{name}"
        if pid_mode is not None:
            cfg.linux.security_context.namespace_options.pid = pid_mode
        return cfg

    def run_pod(self, cfg):
        return self.rt.RunPodSandbox(self.pb2.RunPodSandboxRequest(config=cfg)).pod_sandbox_id

    def container(self, pod_id, pod_cfg, command=("top",)):
        pb2 = self.pb2
        cfg = pb2.ContainerConfig(metadata=pb2.ContainerMetadata(name="c-" + uuid.uuid4().hex[:10]),
                                  image=pb2.ImageSpec(image="docker.io/library/busybox:latest"), command=list(command))
        return self.rt.CreateContainer(pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                                  sandbox_config=pod_cfg)).container_id

    def clean(self):
        for p in self.rt.ListPodSandbox(self.pb2.ListPodSandboxRequest()).items:
            self.rt.StopPodSandbox(self.pb2.StopPodSandboxRequest(pod_sandbox_id=p.id))
            self.rt.RemovePodSandbox(self.pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id))


def timed(samples, key, fn):
    t0 = time.perf_counter()
    r = fn()
    samples.setdefault(key, []).append((time.perf_counter() - t0) * 1000)
    return r


def pod_lifecycle(d, samples):
    pb2 = d.pb2
    pod_id = timed(samples, "RunPodSandbox", lambda: d.run_pod(d.pod_config()))
    timed(samples, "PodSandboxStatus", lambda: d.rt.PodSandboxStatus(pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id,
                                                                                                  verbose=True)))
    timed(samples, "StopPodSandbox", lambda: d.rt.StopPodSandbox(pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id)))
    timed(samples, "RemovePodSandbox", lambda: d.rt.RemovePodSandbox(pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id)))


def container_lifecycle(d, samples):
    pb2 = d.pb2
    cfg = d.pod_config()
    pod_id = d.run_pod(cfg)
    cid = timed(samples, "CreateContainer", lambda: d.container(pod_id, cfg))
    timed(samples, "StartContainer", lambda: d.rt.StartContainer(pb2.StartContainerRequest(container_id=cid)))
    timed(samples, "ContainerStatus", lambda: d.rt.ContainerStatus(pb2.ContainerStatusRequest(container_id=cid,
                                                                                               verbose=True)))
    timed(samples, "StopContainer", lambda: d.rt.StopContainer(pb2.StopContainerRequest(container_id=cid, timeout=60)))
    timed(samples, "RemoveContainer", lambda: d.rt.RemoveContainer(pb2.RemoveContainerRequest(container_id=cid)))
    d.rt.StopPodSandbox(pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    d.rt.RemovePodSandbox(pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def node_figures(d, pods, per_pod, pid_mode, settle, list_calls):
    """`pods` pods of `per_pod` running containers each (kubelet-style pods: pid mode
    CONTAINER); then relist latency, memory of the daemon + its shims + pause processes
    (PSS), and the daemon's idle CPU over `settle` seconds."""
    pb2 = d.pb2
    for _ in range(pods):
        cfg = d.pod_config(pid_mode)
        pod_id = d.run_pod(cfg)
        for _ in range(per_pod):
            cid = d.container(pod_id, cfg, ("sleep", "100000"))
            d.rt.StartContainer(pb2.StartContainerRequest(container_id=cid))
    time.sleep(2)
    lists = {"ListPodSandbox": [], "ListContainers": []}
    for _ in range(list_calls):
        timed(lists, "ListPodSandbox", lambda: d.rt.ListPodSandbox(pb2.ListPodSandboxRequest()))
        timed(lists, "ListContainers", lambda: d.rt.ListContainers(pb2.ListContainersRequest()))
    time.sleep(settle / 2)
    t0, c0 = time.monotonic(), cpu_ticks(d.proc.pid)
    time.sleep(settle)
    idle_cpu = (cpu_ticks(d.proc.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0) * 100
    helpers = children_named({"berth-shim", "containerd-shim", "containerd-shim-runc-v2", "pause"} if True else set())
    helpers = [p for p in helpers if p != d.proc.pid]
    daemon_mem = memory(d.proc.pid)
    helper_mem = [memory(p) for p in helpers]
    return lists, idle_cpu, daemon_mem, helper_mem


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=20, help="samples per benchmark and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--daemons", default="berthd,containerd")
    ap.add_argument("--containers", type=int, default=100, help="containers for the relist figures")
    ap.add_argument("--out")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--log-level", default="warn", help="berthd's (debug shows each pod's start-up steps)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="cri-runtime-", dir="/var/tmp")
    reg = Registry(workdir=os.path.join(work, "registry"))
    daemons = []
    try:
        reg.start()
        busybox = oci_image.build_image("busybox-all")
        oci_image.push(busybox, reg.addr, "library/busybox:latest")
        pause = oci_image.Layer(pause_tar(), "gzip")
        oci_image.push(oci_image.Image([pause], cmd=["/pause"]), reg.addr, "berth/pause:1")
        daemons += make_daemons(work, reg, args.daemons.split(","), args.log_level)
        for d in daemons:
            d.start()
            d.c.pull("busybox")
            d.pulled_at, d.mem_after_pull = time.monotonic(), memory(d.proc.pid)
            pod_lifecycle(d, {})  # warm-up
            container_lifecycle(d, {})

        samples = {d.name: {} for d in daemons}
        for r in range(args.rounds):
            for d in (daemons if r % 2 == 0 else daemons[::-1]):
                for _ in range(args.samples):
                    pod_lifecycle(d, samples[d.name])
                for _ in range(args.samples):
                    container_lifecycle(d, samples[d.name])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

        # Memory is read at steady state: berthd closes its pull libraries (libcurl,
        # libarchive and their chains) UNLOAD_AFTER_PULL seconds after the last pull, so
        # the node figures wait for that; the figure just after the pull is reported too.
        settle_after_pull = max(d.pulled_at for d in daemons) + UNLOAD_AFTER_PULL + 5 - time.monotonic()
        if settle_after_pull > 0:
            print(f"waiting {settle_after_pull:.0f} s for steady state after the pulls", file=sys.stderr)
            time.sleep(settle_after_pull)
        node = {}
        for d in daemons:
            node[d.name] = {"kubelet pods": node_figures(d, 10, 1, d.pb2.CONTAINER, 10, 50)}
            d.clean()
            pods = max(1, args.containers // 10)
            node[d.name]["relist"] = node_figures(d, pods, 10, d.pb2.CONTAINER, 4, 200)
            d.clean()
    finally:
        stop_daemons(daemons, reg)
        for b in ("bt-bench-b", "bt-bench-c"):
            subprocess.run(["ip", "link", "del", b], stderr=subprocess.DEVNULL)
        remove_cgroup_tree("berth-bench")
        if not args.keep_tmp:
            subprocess.run(["sh", "-c", f"grep -o ' {work}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"],
                           check=False)
            shutil.rmtree(work, ignore_errors=True)

    report(daemons, samples, node, args)
    return 0


def report(daemons, samples, node, args):
    names = [d.name for d in daemons]
    results = {"samples": samples, "medians": {}, "node": {}}
    print(f"\nCRI RuntimeService, {args.rounds} rounds x {args.samples} samples, medians in ms")
    print(f"{'call':<20}" + "".join(f"{n:>12}" for n in names) + ("   ratio" if len(names) == 2 else ""))
    for call in ("RunPodSandbox", "PodSandboxStatus", "StopPodSandbox", "RemovePodSandbox", "CreateContainer",
                 "StartContainer", "ContainerStatus", "StopContainer", "RemoveContainer"):
        meds = [statistics.median(samples[n][call]) for n in names]
        results["medians"][call] = dict(zip(names, meds))
        line = f"{call:<20}" + "".join(f"{m:>12.2f}" for m in meds)
        if len(names) == 2:
            line += f"   {meds[0] / meds[1]:.2f}"
        print(line)
    print(f"\nnode, 10 kubelet-style pods (pid mode CONTAINER) with one `sleep` container each:")
    for n in names:
        lists, idle, dm, hm = node[n]["kubelet pods"]
        pss = dm["pss"] + sum(h["pss"] for h in hm)
        rss = dm["rss"] + sum(h["rss"] for h in hm)
        print(f"  {n:<11} daemon PSS {dm['pss'] / MIB:6.1f} MiB (RSS {dm['rss'] / MIB:5.1f}), {len(hm):2d} shim/pause "
              f"processes PSS {sum(h['pss'] for h in hm) / MIB:6.1f} MiB; total PSS {pss / MIB:6.1f} MiB, "
              f"RSS {rss / MIB:6.1f} MiB; daemon idle CPU {idle:.2f} % of a core")
        results["node"][n] = {"daemon": dm, "helpers": hm, "total_pss": pss, "total_rss": rss, "idle_cpu_pct": idle}
    for d in daemons:
        print(f"  {d.name:<11} daemon PSS just after its pull {d.mem_after_pull['pss'] / MIB:6.1f} MiB")
        results["node"][d.name]["daemon_after_pull"] = d.mem_after_pull
    if len(names) == 2:
        a, b = (results["node"][n]["total_pss"] for n in names)
        print(f"  total PSS ratio {a / b:.2f}")
    print(f"\nrelist with {args.containers} running containers (ms, median / p90):")
    for n in names:
        lists = node[n]["relist"][0]
        for call, xs in lists.items():
            xs = sorted(xs)
            print(f"  {n:<11} {call:<15} {statistics.median(xs):6.3f} / {xs[int(0.9 * (len(xs) - 1))]:6.3f}")
            results["node"][n][call] = xs
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


def pause_tar():
    t = oci_image.Tar()
    with open(os.path.join(BUILD, "cri", "pause", "berth-pause"), "rb") as f:
        t.file("pause", f.read(), 0o755)
    return t.bytes()


def cni_conflist(path, name, bridge, subnet, ipam):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": name, "plugins": [
            {"type": "berth-bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": ipam, "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)


def make_daemons(work, reg, wanted, log_level):
    """The daemons named in `wanted` (berthd, containerd), not started, sharing one CNI
    plugin directory (berth-bridge from BUILD, the reference portmap and loopback)."""
    cni_bin = os.path.join(work, "cni-bin")
    os.makedirs(cni_bin)
    for src, name in ((os.path.join(BUILD, "cni", "berth-bridge"), "berth-bridge"),
                      ("/usr/lib/cni/portmap", "portmap"), ("/usr/lib/cni/loopback", "loopback")):
        os.symlink(src, os.path.join(cni_bin, name))
    daemons = []
    if "berthd" in wanted:
        daemons.append(make_berthd(work, reg, cni_bin, log_level))
    if "containerd" in wanted:
        daemons.append(make_containerd(work, reg, cni_bin))
    return daemons


def make_berthd(work, reg, cni_bin, log_level):
    d = os.path.join(work, "berthd")
    state = tempfile.mkdtemp(prefix="bbench", dir="/run")
    cni_conflist(f"{d}/net.d/10-bench.conflist", "bench-b", "bt-bench-b", "10.97.0.0/16", f"{d}/ipam")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'''root = "{d}/root"
state_dir = "{state}"
[log]
level = "{log_level}"
[runtime]
shim = "{BUILD}/shim/berth-shim"
pause = "{BUILD}/cri/pause/berth-pause"
restrict_oom_score_adj = true
[runtime.handlers.berth]
binary = "{BUILD}/runtime/berth"
args = ["--allow-unenforced-limits"]
[cni]
conf_dir = "{d}/net.d"
bin_dirs = ["{cni_bin}"]
cache_dir = "{d}/cni-cache"
[registry."docker.io"]
mirrors = ["{reg.url}"]
''')
    daemon = Daemon("berthd", [os.path.join(BUILD, "cri", "berthd"), "--config", cfg], f"{state}/berthd.sock",
                    f"{d}/berthd.log")
    daemon.state_dir = state
    return daemon


def make_containerd(work, reg, cni_bin):
    d = os.path.join(work, "containerd")
    cni_conflist(f"{d}/net.d/10-bench.conflist", "bench-c", "bt-bench-c", "10.96.0.0/16", f"{d}/ipam")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(private_config(d, f"{d}/containerd.sock", log_level="warn") + f'''[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/berth/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d}/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["{reg.url}"]
''')
    return Daemon("containerd", ["containerd", "--config", cfg], f"{d}/containerd.sock", f"{d}/containerd.log",
                  env=daemon_env())


def stop_daemons(daemons, reg):
    """Removes every pod of each daemon, stops it, drops its state dir; stops the registry."""
    for d in daemons:
        try:
            d.clean()
        except Exception as e:  # noqa: BLE001
            print(f"{d.name}: cleanup: {e}", file=sys.stderr)
        d.stop()
        if getattr(d, "state_dir", None):
            shutil.rmtree(d.state_dir, ignore_errors=True)
    reg.cleanup()


def remove_cgroup_tree(name):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[f.index("-") + 1] not in ("cgroup", "cgroup2"):
            continue
        top = os.path.join(f[4], name)
        if os.path.isdir(top):
            for dirpath, dirnames, _ in sorted(os.walk(top, topdown=False), key=lambda x: -len(x[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


if __name__ == "__main__":
    sys.exit(main())
