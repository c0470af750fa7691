"""Helpers for the CNI suite: a private "host" network namespace per test, pod
namespaces, and berth-cni runs inside the host namespace."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BERTH_CNI_BUILD", REPO / "build" / "cni"))
BERTH_CNI = BUILD / "berth-cni"
BERTH_BRIDGE = BUILD / "berth-bridge"
REFERENCE_DIR = Path("/usr/lib/cni")


def sh(*args, check=True, input=None, timeout=60):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, input=input, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class World:
    """One test's private networking: tmp dir, host netns, pod netns, configs."""

    def __init__(self, key: str):
        self.key = key
        self.tmp = Path(tempfile.mkdtemp(prefix=f"cni-test-{key}-"))
        self.conf_dir = self.tmp / "net.d"
        self.cache_dir = self.tmp / "cache"
        self.ipam_dir = self.tmp / "ipam"
        self.bin_dir = self.tmp / "bin"
        self.ns_dir = self.tmp / "netns"
        for d in (self.conf_dir, self.bin_dir, self.ns_dir):
            d.mkdir(parents=True)
        shutil.copy(BERTH_BRIDGE, self.bin_dir / "berth-bridge")
        self.pods: list[str] = []
        self.host = self.netns_add("host")
        self.in_host("ip", "link", "set", "lo", "up")

    # -- namespaces
    def netns_add(self, name: str) -> str:
        return sh(BERTH_CNI, "netns-add", self.ns_dir, name).stdout.strip()

    def pod(self, name: str) -> str:
        p = self.netns_add(name)
        self.pods.append(p)
        return p

    def in_ns(self, ns: str, *cmd, check=True):
        return sh("nsenter", f"--net={ns}", *cmd, check=check)

    def in_host(self, *cmd, check=True):
        return self.in_ns(self.host, *cmd, check=check)

    # -- configuration
    def write_conf(self, name: str, conf: dict, file: str | None = None) -> Path:
        path = self.conf_dir / (file or f"10-{name}.conflist")
        path.write_text(json.dumps(conf))
        return path

    def host_local(self, subnet="10.250.0.0/24", **extra) -> dict:
        ipam = {"type": "host-local", "dataDir": str(self.ipam_dir)}
        if isinstance(subnet, list):
            ipam["ranges"] = [[{"subnet": s}] for s in subnet]
        else:
            ipam["ranges"] = [[{"subnet": subnet}]]
        ipam.update(extra)
        return ipam

    # -- the client
    def cni(self, *args, check=True, cid=None, ifname="eth0", cni_args=None, cap_args=None, timeout=None,
            bin_path=None):
        cmd = [BERTH_CNI, "--conf-dir", self.conf_dir, "--cache-dir", self.cache_dir,
               "--bin-dir", bin_path or f"{self.bin_dir}:{REFERENCE_DIR}", "--ifname", ifname]
        if cid:
            cmd += ["--cid", cid]
        if cni_args:
            cmd += ["--args", cni_args]
        if cap_args is not None:
            cmd += ["--cap-args", json.dumps(cap_args)]
        if timeout:
            cmd += ["--timeout", str(timeout)]
        return self.in_host(*cmd, *args, check=check)

    def add(self, net, pod, **kw) -> dict:
        return json.loads(self.cni("add", net, pod, **kw).stdout)

    # -- observations
    def links(self, ns: str) -> dict[str, dict]:
        return {l["ifname"]: l for l in json.loads(self.in_ns(ns, "ip", "-j", "-d", "link", "show").stdout)}

    def addrs(self, ns: str, dev: str) -> list[str]:
        out = json.loads(self.in_ns(ns, "ip", "-j", "addr", "show", "dev", dev).stdout)
        return [f"{a['local']}/{a['prefixlen']}" for i in out for a in i.get("addr_info", [])]

    def veths(self) -> list[str]:
        return [n for n, l in self.links(self.host).items() if l.get("linkinfo", {}).get("info_kind") == "veth"]

    def ipam_files(self, net: str) -> list[str]:
        d = self.ipam_dir / net
        if not d.exists():
            return []
        return sorted(p.name for p in d.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip"))

    def ipam_networks(self) -> list[str]:
        return [p.name for p in self.ipam_dir.iterdir()] if self.ipam_dir.exists() else []

    def cache_files(self) -> list[str]:
        d = self.cache_dir / "results"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    def nat_rules(self, v6=False) -> list[str]:
        tool = "ip6tables" if v6 else "iptables"
        out = self.in_host(tool, "-w", "-t", "nat", "-S").stdout.splitlines()
        return [l for l in out if not l.startswith("-P ")]

    def filter_rules(self) -> list[str]:
        return [l for l in self.in_host("iptables", "-w", "-S").stdout.splitlines() if not l.startswith("-P ")]

    def ping(self, ns: str, ip: str) -> bool:
        return self.in_ns(ns, "busybox", "ping", "-c", "1", "-W", "3", ip, check=False).returncode == 0

    def bridge_names(self) -> set[str]:
        names = set()
        for f in self.conf_dir.iterdir() if self.conf_dir.exists() else []:
            try:
                c = json.loads(f.read_text())
            except ValueError:
                continue
            for p in c.get("plugins", [c]) if isinstance(c, dict) else []:
                if isinstance(p, dict) and p.get("bridge"):
                    names.add(p["bridge"])
        return names

    # -- teardown
    def destroy(self):
        for p in self.pods + [self.host]:
            sh(BERTH_CNI, "netns-del", p, check=False)
        # The tmp dir's netns dir was made a mount point by netns-add.
        sh("umount", "-l", self.ns_dir, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def ip_of(result: dict, v6=False) -> str:
    for ip in result.get("ips", []):
        addr = ip["address"].split("/")[0]
        if (":" in addr) == v6:
            return addr
    raise AssertionError(f"no {'IPv6' if v6 else 'IPv4'} address in {result}")


def gateway_of(result: dict, v6=False) -> str:
    for ip in result.get("ips", []):
        if (":" in ip["address"]) == v6:
            return ip["gateway"]
    raise AssertionError(f"no gateway in {result}")


def wait_for(pred, seconds=10.0) -> bool:
    """For state the kernel changes asynchronously (a dying namespace's links)."""
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", name)[-12:]
