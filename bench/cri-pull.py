#!/usr/bin/python3
"""PullImage (pull + unpack) time and daemon RSS: berthd vs containerd 1.6's CRI plugin.

Both daemons run side by side, each with its own root, state and socket, both mapping
docker.io to the same local docker-registry on 127.0.0.1, and both are driven by the
same Python gRPC client (tests/cri/cri_client.py). Rounds alternate the daemon order;
every pulled image is removed (with its content and snapshots) before the next round.
Run through bench/cri-pull.sh (private mount namespace, dependencies). Quote medians
and ratios from one run only.
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "cri"))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import grpc  # noqa: E402

import oci_image  # noqa: E402
from containerd_config import private_config  # noqa: E402
from benchlib import memory, stop_process  # noqa: E402
from cri_client import CriClient  # noqa: E402
from registry import Registry  # noqa: E402

MIB = 1024 * 1024


def wait_serving(proc, socket_path, log, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}; see {log}")
        if os.path.exists(socket_path):
            try:
                with CriClient(socket_path) as c:
                    c.version(timeout=2)
                return
            except grpc.RpcError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"daemon did not serve on {socket_path} within {timeout}s; see {log}")


class Daemon:
    def __init__(self, name, cmd, socket_path, log):
        self.name, self.cmd, self.socket, self.log = name, cmd, socket_path, log
        self.proc = None

    def start(self):
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        wait_serving(self.proc, self.socket, self.log)
        self.client = CriClient(self.socket, timeout=600)

    def stop(self):
        stop_process(self.proc, 30)


def berthd(work, berthd_bin, registry):
    d = os.path.join(work, "berthd")
    os.makedirs(d)
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'root = "{d}/root"\nstate_dir = "{d}/state"\n'
                f'[log]\nlevel = "warn"\n'
                f'[registry."docker.io"]\nmirrors = ["{registry.url}"]\n')
    return Daemon("berthd", [berthd_bin, "--config", cfg], f"{d}/state/berthd.sock", f"{d}/berthd.log")


def containerd(work, containerd_bin, registry):
    d = os.path.join(work, "containerd")
    os.makedirs(d)
    cfg = os.path.join(d, "config.toml")
    # Only what the comparison needs: own root/state/socket, the same mirror, and
    # restrict_oom_score_adj (this machine's root has no CAP_SYS_RESOURCE).
    with open(cfg, "w") as f:
        f.write(private_config(d, f"{d}/containerd.sock", log_level="warn") + f'''[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["{registry.url}"]
''')
    return Daemon("containerd", [containerd_bin, "--config", cfg], f"{d}/containerd.sock", f"{d}/containerd.log")


def timed_pull(daemon, ref):
    # Both roots share a filesystem: write back the previous pull's dirty pages first, so
    # neither daemon pays for the other's (berthd's syncfs would flush them all).
    os.sync()
    t0 = time.perf_counter()
    daemon.client.pull(ref)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--berthd", default=os.path.join(REPO, "build", "cri", "berthd"))
    ap.add_argument("--containerd", default=shutil.which("containerd") or "/usr/bin/containerd")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before an RSS reading")
    ap.add_argument("--out", help="also write the results (with raw samples) as JSON")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="cri-pull-", dir="/var/tmp")
    daemons = []
    reg = Registry(workdir=os.path.join(work, "registry"))
    try:
        reg.start()
        print(f"building and pushing images to {reg.addr} ...", file=sys.stderr)
        images = {
            "small": ("library/bench-small:1", oci_image.build_image("busybox")),
            "big": ("library/bench-big:1", oci_image.build_image("big")),
        }
        sizes = {}
        for key, (name, img) in images.items():
            summary = oci_image.push(img, reg.addr, name)
            sizes[key] = (summary["size"], len(summary["layers"]))
        daemons = [berthd(work, args.berthd, reg), containerd(work, args.containerd, reg)]
        for d in daemons:
            d.start()
            d.client.version()
        # Warm-up: one pull of the small image each (first connections, code paging in).
        for d in daemons:
            d.client.pull("bench-small:1")
            d.client.remove("bench-small:1")
        time.sleep(args.settle)
        idle = {d.name: memory(d.proc.pid) for d in daemons}

        samples = {d.name: {k: [] for k in images} for d in daemons}
        for r in range(args.rounds):
            order = daemons if r % 2 == 0 else daemons[::-1]
            for key, (name, _) in images.items():
                for d in order:
                    samples[d.name][key].append(timed_pull(d, name.replace("library/", "")))
                    d.client.remove(name.replace("library/", ""))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        # RSS right after pulling (the images stay pulled for this reading).
        for d in daemons:
            for key, (name, _) in images.items():
                d.client.pull(name.replace("library/", ""))
        time.sleep(args.settle)
        after = {d.name: memory(d.proc.pid) for d in daemons}
    finally:
        for d in daemons:
            d.stop()
        reg.cleanup()
        if not args.keep_tmp:
            # Leftover overlay mounts live in this private mount namespace only.
            subprocess.run(["sh", "-c", f"grep -o ' {work}[^ ]*' /proc/self/mountinfo | sort -r | "
                            "xargs -r -n1 umount -l"], check=False)
            shutil.rmtree(work, ignore_errors=True)

    b, c = "berthd", "containerd"
    print(f"\nCRI PullImage (pull + unpack), {args.rounds} rounds, medians; registry on {reg.addr}")
    print(f"{'image':<8} {'size':>9} {'layers':>6} {'berthd s':>9} {'containerd s':>12} {'ratio':>6}")
    results = {"rounds": args.rounds, "pull": {}, "rss": {}}
    for key in images:
        mb, mc = statistics.median(samples[b][key]), statistics.median(samples[c][key])
        size, layers = sizes[key]
        print(f"{key:<8} {size / MIB:>7.1f}Mi {layers:>6} {mb:>9.3f} {mc:>12.3f} {mb / mc:>6.2f}")
        results["pull"][key] = {"size": size, "layers": layers, "berthd_median_s": mb,
                                "containerd_median_s": mc, "ratio": mb / mc,
                                "samples": {b: samples[b][key], c: samples[c][key]}}
    print(f"\n{'memory':<22} {'berthd':>9} {'containerd':>11} {'ratio':>6}")
    for label, values in (("idle", idle), ("after pulls", after)):
        for kind in ("rss", "pss", "private", "anon"):
            vb, vc = values[b][kind], values[c][kind]
            print(f"{label + ' ' + kind.upper():<22} {vb / MIB:>7.1f}Mi {vc / MIB:>9.1f}Mi {vb / vc:>6.2f}")
            results["rss"].setdefault(label, {})[kind] = {b: vb, c: vc, "ratio": vb / vc}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
