"""A Berth node as it runs in production, in the tests/vm guest booted with systemd as
PID 1 on pure cgroup v2 (tests/vm/run-systemd-node.sh runs this file there).

Berth is installed the way a user installs it (the .deb in $BERTH_DEB with apt, else
`meson install` of the build tree), configured through its installed config files, and
run as the installed units: berthd.service (systemd cgroup driver) and berthlet.service.
A static pod with memory and cpu limits then runs in its kubepods slice and answers over
berth-bridge; restarts, crashes and a hung berthd are survived. The tests run in order
and share one node (module fixtures); figures and transcripts go to $BERTH_VM_REPORT."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
import oci_image  # noqa: E402
import registry as registry_lib  # noqa: E402

pytestmark = pytest.mark.skipif(
    not os.environ.get("VMRUN_GUEST") or Path("/proc/1/comm").read_text().strip() != "systemd",
    reason="needs the tests/vm guest booted with --systemd (tests/vm/run-systemd-node.sh)")

CGROUP = Path("/sys/fs/cgroup")
MANIFESTS = Path("/etc/kubernetes/manifests")
REPORT = Path(os.environ.get("BERTH_VM_REPORT", "/tmp/berth-vm-report"))
SUBNET = "10.88.0.0/16"

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: demo/web:1
    command: ["sh", "-c", "echo hello from $(hostname) > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
    resources:
      requests: {memory: 32Mi, cpu: 100m}
      limits: {memory: 64Mi, cpu: 500m}
"""


def sh(*cmd, check=True, timeout=120) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed rc={r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def wait_for(cond, timeout, what, interval=0.2):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def show(unit, *props) -> dict[str, str]:
    out = sh("systemctl", "show", unit, *[f"-p{p}" for p in props]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def report(name, text):
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / name).write_text(text)
    print(f"--- {name}\n{text}")


def journal(unit, lines=60):
    return sh("journalctl", "--no-pager", "-o", "cat", "-n", lines, "-u", unit, check=False).stdout


def activation_ms(unit) -> float:
    """From systemd starting the unit to its READY=1 (Type=notify)."""
    p = show(unit, "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    return (int(p["ActiveEnterTimestampMonotonic"]) - int(p["InactiveExitTimestampMonotonic"])) / 1000


def unit_dirs():
    """Where the installed units and binaries are: /usr (package) or /usr/local (meson)."""
    for prefix in ("/usr", "/usr/local"):
        if Path(prefix, "sbin", "berthd").exists():
            return Path(prefix)
    raise AssertionError("berthd is not installed")


class Node:
    def __init__(self):
        self.prefix = None
        self.registry = None
        self.pod = None

    def pods(self):
        with urllib.request.urlopen("http://127.0.0.1:10255/pods", timeout=5) as r:
            return json.load(r)["items"]

    def web_pod(self):
        for p in self.pods():
            if p["metadata"]["name"].startswith("web-"):
                return p
        return None

    def web_ready(self):
        p = self.web_pod()
        if not p:
            return None
        conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        return p if conds.get("Ready") == "True" and p["status"].get("podIP") else None

    def page(self, ip, timeout=3):
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=timeout) as r:
            return r.read().decode()

    def slice_dir(self, uid):
        name = "kubepods-burstable-pod" + uid.replace("-", "_") + ".slice"
        return CGROUP / "kubepods.slice" / "kubepods-burstable.slice" / name

    def container_pids(self, uid):
        """The containers' init processes: busybox httpd forks a child per request (the
        readiness probe's, each second), which comes and goes."""
        pids = set()
        for procs in self.slice_dir(uid).glob("berth-*.scope/cgroup.procs"):
            pids |= {int(x) for x in procs.read_text().split()}
        return {p for p in pids if (pp := _ppid(p)) is not None and pp not in pids}


def _ppid(pid):
    try:
        return int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
    except (OSError, AttributeError):
        return None


@pytest.fixture(scope="module")
def node():
    n = Node()
    yield n
    if n.registry:
        n.registry.cleanup()
    for unit in ("berthlet", "berthd"):
        print(f"--- journal of {unit}\n{journal(unit, 80)}")


def test_install(node):
    deb = os.environ.get("BERTH_DEB")
    t0 = time.monotonic()
    if deb:
        r = sh("apt-get", "install", "-y", "--no-install-recommends", deb, timeout=600)
        how = f"apt-get install {Path(deb).name}"
    else:
        r = sh("meson", "install", "-C", REPO / "build", "--no-rebuild", "--quiet", timeout=600)
        how = "meson install -C build"
    report("install.txt", f"{how}: {time.monotonic() - t0:.1f} s\n{r.stdout[-2000:]}")
    node.prefix = unit_dirs()
    sh("systemctl", "daemon-reload")
    # Installed, enabled by nothing.
    for unit in ("berthd.service", "berthlet.service"):
        p = show(unit, "LoadState", "UnitFileState", "FragmentPath")
        assert p["LoadState"] == "loaded", p
        assert p["UnitFileState"] == "disabled", p
        text = Path(p["FragmentPath"]).read_text()
        assert f"ExecStart={node.prefix}/sbin/" in text, text
    etc = Path("/etc") if node.prefix == Path("/usr") else node.prefix / "etc"
    node.etc = etc / "berth"
    assert (node.etc / "berthd.toml").exists() and (node.etc / "berthlet.yaml").exists()
    # Where CNI users look: the CNI convention's and Debian's plugin directories.
    plugins = [Path(d) / "berth-bridge" for d in ("/opt/cni/bin", "/usr/lib/cni")]
    assert all(os.access(p, os.X_OK) for p in plugins) and plugins[0].samefile(plugins[1]), plugins


def test_services_start_and_report_ready(node):
    # A local registry with the pod's image (no network here).
    node.registry = registry_lib.Registry()
    node.registry.start(timeout=60)

    def applets(t):
        for a in ("httpd", "hostname"):
            t.symlink(f"bin/{a}", "busybox")
    image = oci_image.Image([oci_image.Layer(oci_image.busybox_tar(applets), "gzip")], cmd=["sh"])
    oci_image.push(image, node.registry.addr, "demo/web:1")
    # The installed example configs, edited as an operator would.
    toml = (node.etc / "berthd.toml").read_text()
    toml += f'\n[registry."docker.io"]\nmirrors = ["http://{node.registry.addr}"]\n'
    toml = re.sub(r'(?m)^#?cgroup_driver = .*$', 'cgroup_driver = "systemd"', toml)
    assert 'cgroup_driver = "systemd"' in toml, "berthd.toml lost its cgroup_driver key"
    (node.etc / "berthd.toml").write_text(toml)
    yaml = (node.etc / "berthlet.yaml").read_text()
    yaml = re.sub(r'(?m)^#?\s*cgroupDriver:.*$', "cgroupDriver: systemd", yaml)
    assert "cgroupDriver: systemd" in yaml and "unix:///run/berthd/berthd.sock" in yaml, yaml
    (node.etc / "berthlet.yaml").write_text(yaml)
    conflist = json.loads(next((node.prefix / "share" / "doc" / "berth" / "examples").glob("*.conflist")).read_text())
    Path("/etc/cni/net.d").mkdir(parents=True, exist_ok=True)
    Path("/etc/cni/net.d/10-berth.conflist").write_text(json.dumps(conflist))
    MANIFESTS.mkdir(parents=True, exist_ok=True)
    # The guest's / is an overlayfs, which cannot hold overlayfs upper layers (the
    # snapshots): berthd's state directory gets a tmpfs, as a real node's /var is a disk.
    Path("/var/lib/berthd").mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "mode=0711", "tmpfs", "/var/lib/berthd")

    sh("systemctl", "start", "berthd.service")
    node.berthd_ready_ms = activation_ms("berthd.service")
    t0 = time.monotonic()
    sh("systemctl", "start", "berthlet.service")
    node.berthlet_started = t0
    node.berthlet_ready_ms = activation_ms("berthlet.service")
    for unit in ("berthd.service", "berthlet.service"):
        p = show(unit, "ActiveState", "SubState", "Type", "WatchdogUSec", "Delegate", "KillMode", "NotifyAccess")
        assert (p["ActiveState"], p["Type"], p["NotifyAccess"]) == ("active", "notify", "main"), p
        assert p["WatchdogUSec"] != "0", p
    assert show("berthd.service", "Delegate", "KillMode") == {"Delegate": "yes", "KillMode": "process"}


def test_static_pod_runs_in_its_slice_with_limits(node):
    t0 = time.monotonic()
    (MANIFESTS / "web.yaml").write_text(MANIFEST)
    pod = wait_for(node.web_ready, 180, "the static pod to be Ready")
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.88."), ip
    text = wait_for(lambda: _try(node.page, ip), 30, "the pod's page")
    node.pod_answer_s = time.monotonic() - t0
    node.pod_from_berthlet_s = time.monotonic() - node.berthlet_started
    assert text.startswith("hello from web"), text
    uid = pod["metadata"]["uid"]
    node.uid, node.ip = uid, ip
    sl = node.slice_dir(uid)
    # The pod's limits on its slice (berthlet: summed as the kubelet does), the container's on its scope.
    assert (sl / "memory.max").read_text().strip() == str(64 << 20)
    assert (sl / "cpu.max").read_text().strip() == "50000 100000"
    scopes = list(sl.glob("berth-*.scope"))
    assert len(scopes) == 1, list(sl.iterdir())
    assert (scopes[0] / "memory.max").read_text().strip() == str(64 << 20)
    assert (scopes[0] / "cpu.max").read_text().strip() == "50000 100000"
    assert show(sl.name, "ActiveState", "MemoryMax") == {"ActiveState": "active", "MemoryMax": str(64 << 20)}
    node.pids = node.container_pids(uid)
    assert node.pids
    report("status.txt", sh("systemctl", "status", "--no-pager", "-l", "berthd", "berthlet", check=False).stdout)
    report("cgls.txt", sh("systemd-cgls", "--no-pager").stdout)
    report("figures.json", json.dumps({
        "berthd_ready_ms": node.berthd_ready_ms, "berthlet_ready_ms": node.berthlet_ready_ms,
        "manifest_to_page_s": round(node.pod_answer_s, 2),
        "berthlet_start_to_page_s": round(node.pod_from_berthlet_s, 2),
        "boot_to_page_s": float(Path("/proc/uptime").read_text().split()[0])}, indent=1))


def _try(fn, *a):
    try:
        return fn(*a)
    except OSError:
        return None


def alive(pids):
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def main_pid(unit):
    return int(show(unit, "MainPID")["MainPID"])


def wait_readopted(node, what):
    """The pod still runs the same processes and berthd (again) reports it Ready."""
    assert alive(node.pids) == node.pids, f"container processes died: {what}"
    wait_for(lambda: _try(node.page, node.ip), 60, f"the page after {what}")
    pod = wait_for(node.web_ready, 90, f"the pod Ready after {what}")
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    assert restarts == 0, pod["status"]
    assert node.container_pids(node.uid) == node.pids


def test_restart_berthd_and_stop_berthlet_leave_the_pod_running(node):
    old = main_pid("berthd.service")
    sh("systemctl", "restart", "berthd.service")
    assert main_pid("berthd.service") not in (0, old)
    wait_readopted(node, "systemctl restart berthd")
    sh("systemctl", "stop", "berthlet.service")
    assert alive(node.pids) == node.pids
    assert node.page(node.ip).startswith("hello from web")
    sh("systemctl", "start", "berthlet.service")
    wait_readopted(node, "systemctl stop + start berthlet")


def test_sigkilled_berthd_is_restarted_and_recovers(node):
    before = int(show("berthd.service", "NRestarts")["NRestarts"])
    old = main_pid("berthd.service")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: show("berthd.service", "ActiveState", "MainPID") != {} and
             main_pid("berthd.service") not in (0, old) and
             show("berthd.service", "ActiveState")["ActiveState"] == "active", 60, "systemd to restart berthd")
    assert int(show("berthd.service", "NRestarts")["NRestarts"]) == before + 1
    wait_readopted(node, "SIGKILL of berthd")


def test_watchdog_restarts_a_hung_berthd(node):
    before = int(show("berthd.service", "NRestarts")["NRestarts"])
    old = main_pid("berthd.service")
    os.kill(old, signal.SIGSTOP)
    t0 = time.monotonic()
    wait_for(lambda: main_pid("berthd.service") not in (0, old) and
             show("berthd.service", "ActiveState")["ActiveState"] == "active", 120, "the watchdog to restart berthd")
    node.watchdog_restart_s = time.monotonic() - t0
    assert int(show("berthd.service", "NRestarts")["NRestarts"]) == before + 1
    assert "watchdog" in journal("berthd.service", 400).lower()
    wait_readopted(node, "a watchdog restart of berthd")
    report("watchdog.txt", f"SIGSTOP -> berthd active again after {node.watchdog_restart_s:.1f} s\n")


def test_removing_the_manifest_removes_the_pod_and_its_slice(node):
    sl = node.slice_dir(node.uid)
    (MANIFESTS / "web.yaml").unlink()
    wait_for(lambda: node.web_pod() is None, 90, "the pod to be removed")
    wait_for(lambda: not sl.exists(), 60, f"{sl} to be removed")
    wait_for(lambda: not alive(node.pids), 30, "the container's processes to end")
    assert show(sl.name, "ActiveState")["ActiveState"] == "inactive"
    # berthd's own state is empty again, and both services still run.
    for unit in ("berthd.service", "berthlet.service"):
        assert show(unit, "ActiveState")["ActiveState"] == "active"
    leftover = [p.name for p in (CGROUP / "kubepods.slice").rglob("berth-*.scope")] if (CGROUP / "kubepods.slice").exists() else []
    assert leftover == []


def test_cgroupfs_driver_pod_directory_with_limits(node):
    """The same node switched to the cgroupfs driver: berthlet makes
    /kubepods/burstable/pod<uid> itself on pure cgroup v2, with the controllers enabled
    down the path and the pod's limits written, and removes it with the pod."""
    for path, old, new in ((node.etc / "berthd.toml", 'cgroup_driver = "systemd"', 'cgroup_driver = "cgroupfs"'),
                           (node.etc / "berthlet.yaml", "cgroupDriver: systemd", "cgroupDriver: cgroupfs")):
        path.write_text(path.read_text().replace(old, new))
    sh("systemctl", "restart", "berthd.service", "berthlet.service")
    (MANIFESTS / "web.yaml").write_text(MANIFEST)
    pod = wait_for(node.web_ready, 180, "the static pod to be Ready (cgroupfs)")
    assert node.page(pod["status"]["podIP"]).startswith("hello from web")
    d = CGROUP / "kubepods" / "burstable" / f"pod{pod['metadata']['uid']}"
    assert (d / "memory.max").read_text().strip() == str(64 << 20)
    assert (d / "cpu.max").read_text().strip() == "50000 100000"
    assert {"cpu", "memory", "pids"} <= set((CGROUP / "kubepods" / "burstable" / "cgroup.subtree_control").read_text().split())
    assert [p.name for p in d.iterdir() if p.is_dir()], "the container's cgroup is not in the pod's"
    (MANIFESTS / "web.yaml").unlink()
    wait_for(lambda: node.web_pod() is None, 90, "the pod to be removed")
    wait_for(lambda: not d.exists(), 60, f"{d} to be removed")
