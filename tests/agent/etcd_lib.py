"""A 3-member etcd cluster on loopback for the etcd status sink's tests and bench (Debian's
etcd-server and etcd-client): started in a directory of the caller's, every process ended
by its PID; read with etcdctl (ETCDCTL_API=3)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import agent_lib as L


class EtcdCluster:
    """Three etcd members on loopback ports, data in root; every process started here is
    ended by its PID."""

    def __init__(self, root: Path):
        self.root = root
        self.client = [L.free_port() for _ in range(3)]
        self.peer = [L.free_port() for _ in range(3)]
        self.procs = [None, None, None]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.client]
        self.initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer))

    def start(self, i, state="new"):
        data = self.root / f"m{i}"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = open(self.root / f"m{i}.log", "ab")
        self.procs[i] = subprocess.Popen(
            ["etcd", "--name", f"m{i}", "--data-dir", str(data), "--listen-client-urls", self.urls[i],
             "--advertise-client-urls", self.urls[i], "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}", "--initial-cluster", self.initial,
             "--initial-cluster-state", state, "--initial-cluster-token", f"berth-{os.getpid()}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def start_all(self):
        for i in range(3):
            self.start(i)
        L.wait_for(lambda: self.ctl("endpoint", "health", check=False).returncode == 0, timeout=60,
                   what="a healthy etcd cluster")

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()
        self.procs[i] = None

    def stop(self):
        for i, p in enumerate(self.procs):
            if p is not None:
                self.kill(i)

    def ctl(self, *args, check=True):
        live = [u for u, p in zip(self.urls, self.procs) if p is not None]
        r = subprocess.run(["etcdctl", "--endpoints", ",".join(live), "--command-timeout=5s", *args],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"etcdctl {args}: {r.stderr}")
        return r

    def get_prefix(self, prefix):
        """key -> value (str) of every key under prefix."""
        out = json.loads(self.ctl("get", "--prefix", prefix, "-w", "json").stdout)
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                for kv in out.get("kvs", [])}
