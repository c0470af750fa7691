#!/usr/bin/python3
"""berthctl vs crictl: wall time from spawn to exit of `<client> version` against one
private berthd (start-up, one gRPC connection, one Version RPC, exit), interleaved runs.
Run through bench/berthctl.sh. Quote medians and ratios from one run only."""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from benchlib import med, p90, spawn_timed  # noqa: E402

ANCHOR_CRICTL = "/var/tmp/berth-anchors/cri-tools/crictl"


def find_crictl():
    for c in (os.environ.get("CRICTL"), ANCHOR_CRICTL, shutil.which("crictl")):
        if c and os.access(c, os.X_OK):
            return c
    return None


def start_berthd(tmp):
    berthd = os.environ.get("BERTHD", os.path.join(REPO, "build", "cri", "berthd"))
    conf = os.path.join(tmp, "berthd.toml")
    state = tempfile.mkdtemp(prefix="btctl", dir="/run")
    with open(conf, "w") as f:
        f.write(f'root = "{tmp}/root"\nstate_dir = "{state}"\n[runtime]\n'
                f'shim = "{REPO}/build/shim/berth-shim"\npause = "{REPO}/build/cri/pause/berth-pause"\n'
                f'[runtime.handlers.berth]\nbinary = "{REPO}/build/runtime/berth"\n')
    log = open(os.path.join(tmp, "berthd.log"), "wb")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    proc = subprocess.Popen([berthd, "--config", conf], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    sock = os.path.join(state, "berthd.sock")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"berthd exited with {proc.returncode}: see {tmp}/berthd.log")
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.close()
            return proc, sock, state
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("berthd did not listen within 30 s")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out")
    a = ap.parse_args()
    berthctl = os.environ.get("BERTHCTL", os.path.join(REPO, "build", "ctl", "berthctl"))
    crictl = find_crictl()
    tmp = tempfile.mkdtemp(prefix="berthctl-bench-")
    proc, sock, state = start_berthd(tmp)
    try:
        clients = {"berthctl": [berthctl, "-r", f"unix://{sock}", "version"]}
        if crictl:
            # --config /dev/null: crictl reads no /etc/crictl.yaml of this machine.
            clients["crictl"] = [crictl, "--config", "/dev/null", "-r", f"unix://{sock}", "version"]
        samples = {k: [] for k in clients}
        # CPU time (user+sys) moves far less than wall time on a loaded machine.
        cpu = {k: [] for k in clients}
        failures = {k: 0 for k in clients}
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": tmp}
        err = os.path.join(tmp, "stderr")
        for i in range(a.warmup + a.runs):
            order = list(clients) if i % 2 == 0 else list(reversed(clients))
            for name in order:
                rc, wall, cpu_ms, tail = spawn_timed(clients[name], env, stderr_path=err)
                if rc != 0:
                    failures[name] += 1
                    print(f"{name}: rc {rc}: {tail}", file=sys.stderr)
                elif i >= a.warmup:
                    samples[name].append(wall)
                    cpu[name].append(cpu_ms)
        print(f"`version` against one berthd, {a.runs} runs each (wall ms spawn to exit; CPU ms user+sys)")
        print(f"{'client':<10} {'median':>8} {'p90':>8} {'min':>8} {'cpu med':>8} {'cpu min':>8} {'failed':>7}")
        for name, xs in samples.items():
            print(f"{name:<10} {med(xs):8.2f} {p90(xs):8.2f} {min(xs):8.2f} {med(cpu[name]):8.2f} {min(cpu[name]):8.2f} "
                  f"{failures[name]:7d}")
        if "crictl" in samples:
            print(f"crictl / berthctl median ratio: {med(samples['crictl']) / med(samples['berthctl']):.1f}x")
        else:
            print("crictl: not found (set CRICTL); its column is skipped")
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"runs": a.runs, "samples_ms": samples, "cpu_ms": cpu, "failures": failures}, f, indent=1)
        return 0 if not any(failures.values()) else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
