"""Helpers for berthlet's end-to-end suite: a private containerd 1.6 with its CRI plugin,
a local registry with busybox-static images, a CRI client for checking what really runs,
and berthlet processes driven through manifest files and their status endpoint.

Everything lives under one temp root (AGENT_ROOT, made by run.sh) and one cgroup root
(/berthlet-test-<tag>); only processes started here are ever signalled.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))

import oci_image  # noqa: E402  (tests/lib, shared with the image suite)
from containerd_config import daemon_env, private_config  # noqa: E402
from registry import Registry  # noqa: E402,F401

BERTHLET = os.environ.get("BERTHLET", str(REPO / "build" / "agent" / "berthlet"))
NODE = "node1"


def wait_for(cond, timeout=30.0, interval=0.1, what="condition"):
    """Polls cond() until it returns something truthy; errors of a thing not there yet
    (connection refused, missing key) count as "not yet"."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = cond()
            if last:
                return last
        except (OSError, KeyError, IndexError, TypeError, urllib.error.URLError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# CRI client (python stubs generated from cri/proto/api.proto at session start)


class Cri:
    def __init__(self, sock: Path, gen_dir: Path):
        import grpc
        gen_dir.mkdir(parents=True, exist_ok=True)
        if not (gen_dir / "api_pb2_grpc.py").exists():
            subprocess.run(["protoc", f"-I{REPO / 'cri' / 'proto'}", f"--python_out={gen_dir}",
                            f"--grpc_python_out={gen_dir}", "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                            "api.proto"], check=True)
        sys.path.insert(0, str(gen_dir))
        import api_pb2
        import api_pb2_grpc
        self.pb = api_pb2
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)

    def version(self):
        return self.rt.Version(self.pb.VersionRequest(version="v1"), timeout=10)

    def sandboxes(self, uid=None):
        f = self.pb.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": uid} if uid else {})
        return list(self.rt.ListPodSandbox(self.pb.ListPodSandboxRequest(filter=f), timeout=30).items)

    def containers(self, uid=None):
        f = self.pb.ContainerFilter(label_selector={"io.kubernetes.pod.uid": uid} if uid else {})
        return list(self.rt.ListContainers(self.pb.ListContainersRequest(filter=f), timeout=30).containers)

    def container_status(self, cid):
        return self.rt.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid), timeout=30).status

    def sandbox_status(self, sid):
        return self.rt.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=sid), timeout=30).status

    def running(self, uid=None):
        return [c for c in self.containers(uid) if c.state == self.pb.CONTAINER_RUNNING]

    def remove_everything(self):
        """Stops and removes every sandbox (and with it its containers)."""
        for s in self.sandboxes():
            with contextlib.suppress(Exception):
                self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
            with contextlib.suppress(Exception):
                self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)


# --------------------------------------------------------------------------------------
# containerd with the CRI plugin


class Containerd:
    runtime_name = "containerd"

    def __init__(self, root: Path, registry_addr: str, cni_conf: Path, sandbox_image: str,
                 runtime_binary: str = "runc", cni_bin_dir: str = "/usr/lib/cni"):
        """runtime_binary: the OCI runtime containerd's runc shim execs (berth, runc or crun);
        its state root is kept under `root` (runtime-root/) so it can be listed."""
        self.root = root
        self.runtime_binary = runtime_binary
        self.runtime_root = root / "runtime-root"
        self.cni_bin_dir = cni_bin_dir
        self.sock = root / "containerd.sock"
        self.config = root / "config.toml"
        self.log = root / "containerd.log"
        self.registry_addr = registry_addr
        self.cni_conf = cni_conf
        self.sandbox_image = sandbox_image
        self.proc = None

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(private_config(self.root, self.sock) + f"""[plugins."io.containerd.internal.v1.opt"]
  path = "{self.root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stats_collect_period = 10
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{self.runtime_binary}"
        Root = "{self.runtime_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{self.cni_bin_dir}"
    conf_dir = "{self.cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://{self.registry_addr}"]
""")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(["containerd", "--config", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, start_new_session=True, env=daemon_env())
        logf.close()
        (self.root / "containerd.pid").write_text(str(self.proc.pid))

    def wait_ready(self, cri: Cri):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited rc={self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if not self.sock.exists():
                return False
            with contextlib.suppress(Exception):
                return cri.version().runtime_name
            return False
        wait_for(ready, timeout=30, interval=0.2, what="containerd's CRI to answer")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # shims of ours name our socket on their command line
        for pid in pids_with_arg(str(self.sock)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Berthd:
    """berthd as the CRI endpoint: berth-shim, berth (OCI runtime) and the CNI conf dir's
    plugins, all from this build. Same interface as Containerd. State under a short dir in
    /run (the shims' sockets live under <state>/shims/<64 hex>/)."""

    runtime_name = "berth"

    def __init__(self, root: Path, registry_addr: str, cni_conf: Path, cni_bin_dir: str, state_dir: Path):
        self.root = root
        self.state = state_dir
        self.sock = state_dir / "berthd.sock"
        self.config = root / "berthd.toml"
        self.log = root / "berthd.log"
        self.registry_addr = registry_addr
        self.cni_conf = cni_conf
        self.cni_bin_dir = cni_bin_dir
        self.extra_config = ""  # TOML appended to the config (tables of their own)
        self.proc = None

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        build = REPO / "build"
        self.config.write_text(f"""root = "{self.root}/lib"
state_dir = "{self.state}"
[runtime]
shim = "{os.environ.get('BERTH_SHIM', build / 'shim' / 'berth-shim')}"
pause = "{os.environ.get('BERTH_PAUSE', build / 'cri' / 'pause' / 'berth-pause')}"
restrict_oom_score_adj = true
[runtime.handlers.berth]
binary = "{os.environ.get('BERTH', build / 'runtime' / 'berth')}"
# this host's cgroup v2 tree has no resource controllers (cgroup-hybrid)
args = ["--allow-unenforced-limits"]
[cni]
conf_dir = "{self.cni_conf}"
bin_dirs = ["{self.cni_bin_dir}", "/usr/lib/cni"]
cache_dir = "{self.root}/cni-cache"
[registry."docker.io"]
mirrors = ["http://{self.registry_addr}"]
""" + self.extra_config)
        logf = open(self.log, "ab")
        berthd = os.environ.get("BERTHD", str(build / "cri" / "berthd"))
        self.proc = subprocess.Popen([berthd, "--config", str(self.config), "--log-level", "debug"],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()

    def wait_ready(self, cri: Cri):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"berthd exited rc={self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if not self.sock.exists():
                return False
            with contextlib.suppress(Exception):
                return cri.version().runtime_name
            return False
        wait_for(ready, timeout=30, interval=0.05, what="berthd's CRI to answer")

    def stop(self):
        """Stops berthd; its shims and containers outlive it (they are removed through the
        CRI before, or by the suite's teardown)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pids_with_arg(needle: str):
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            args = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(needle in a for a in args):
            out.append(int(name))
    return out


def write_cni_conf(conf_dir: Path, bridge: str, subnet: str, data_dir: Path):
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "10-berthlet-test.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0",
        "name": "berthlet-test",
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "loopback"},
        ],
    }))


# --------------------------------------------------------------------------------------
# berthlet


def decode_logfmt(line):
    """time="..." level=info msg="a \\"b\\"" k=v  ->  'info a "b" k=v' (other lines as they are)."""
    fields, i = {}, 0
    while i < len(line):
        eq = line.find("=", i)
        if eq < 0 or " " in line[i:eq]:
            return line
        key, i = line[i:eq], eq + 1
        if line[i:i + 1] == '"':
            try:
                value, used = json.JSONDecoder().raw_decode(line, i)
            except ValueError:
                return line
            i = used
        else:
            end = line.find(" ", i)
            end = len(line) if end < 0 else end
            value, i = line[i:end], end
        fields[key] = value
        while line[i:i + 1] == " ":
            i += 1
    if "msg" not in fields:
        return line
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("time", "level", "msg"))
    return f'{fields.get("level", "")} {fields["msg"]}' + (f" {rest}" if rest else "")


class Berthlet:
    def __init__(self, root: Path, endpoint: Path, cgroup_root: str):
        self.root = root
        self.manifests = root / "manifests"
        self.logs = root / "logs"
        self.rootdir = root / "lib"
        self.logfile = root / "berthlet.log"
        self.endpoint = endpoint
        self.cgroup_root = cgroup_root
        self.port = free_port()
        self.proc = None
        for d in (self.manifests, self.logs, self.rootdir):
            d.mkdir(parents=True, exist_ok=True)

    def start(self, *extra, env=None, wait=True, nofile=None):
        """nofile: RLIMIT_NOFILE (soft and hard) for berthlet, as a unit without LimitNOFILE gets."""
        logf = open(self.logfile, "ab")

        def limits():
            if nofile is not None:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [BERTHLET, "--pod-manifest-path", str(self.manifests), "--container-runtime-endpoint",
             f"unix://{self.endpoint}", "--hostname-override", NODE, "--address", "127.0.0.1",
             "--read-only-port", str(self.port), "--pod-logs-dir", str(self.logs), "--root-dir",
             str(self.rootdir), "--cgroup-root", self.cgroup_root, *extra],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            env=dict(os.environ, **(env or {})), preexec_fn=limits)
        logf.close()
        if wait:
            wait_for(lambda: self.get("/healthz") == "ok", timeout=20, what="berthlet's /healthz")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def log(self):
        """The log with its logfmt lines decoded ("<level> <msg> key=value ..."), so that
        tests match messages as written, quotes included."""
        text = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
        return "".join(decode_logfmt(line) + "\n" for line in text.splitlines())

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.read().decode()

    def get_status(self, path):
        """(HTTP status, body), also for error statuses."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def memory_kib(self, field="VmHWM"):
        """VmHWM (peak resident set) or VmRSS of the berthlet process, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def pods(self):
        return json.loads(self.get("/pods"))["items"]

    def pod(self, name, ns="default"):
        """The pod of manifest name `name` (berthlet appends -<node>), or None."""
        for p in self.pods():
            if p["metadata"]["name"] == f"{name}-{NODE}" and p["metadata"]["namespace"] == ns:
                return p
        return None

    def manifests_status(self):
        return {Path(m["path"]).name: m for m in json.loads(self.get("/manifests"))["manifests"]}

    def write(self, filename, doc):
        """Writes a manifest atomically (a dict is written as YAML; a str as it is)."""
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        tmp = self.manifests / f".{filename}.tmp"
        tmp.write_text(text)
        os.rename(tmp, self.manifests / filename)

    def remove(self, filename):
        (self.manifests / filename).unlink()

    def wait_pod(self, name, pred, timeout=60, what=None):
        def check():
            p = self.pod(name)
            return p if p is not None and pred(p) else None
        try:
            return wait_for(check, timeout=timeout, interval=0.1, what=what or f"pod {name}")
        except AssertionError as e:
            raise AssertionError(f"{e}\npod now: {json.dumps(self.pod(name), indent=1)}\n"
                                 f"--- berthlet log (tail)\n{self.log()[-4000:]}") from None


def pod_manifest(name, containers, init=None, volumes=None, **spec):
    s = {"terminationGracePeriodSeconds": 1, "containers": containers}
    if init:
        s["initContainers"] = init
    if volumes:
        s["volumes"] = volumes
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": s}


def container(name, script, image="busybox:latest", **extra):
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]}
    c.update(extra)
    return c


# A container that ends promptly on SIGTERM (sh as PID 1 would ignore it).
SLEEPER = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


def condition(pod, ctype):
    for c in pod.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return c["status"] == "True"
    return None


def cstatus(pod, name, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for c in pod.get("status", {}).get(key, []):
        if c["name"] == name:
            return c
    return None


def running(pod, name):
    cs = cstatus(pod, name)
    return cs is not None and "running" in cs["state"]


# A status sink's webhook requests (tests/agent/test_status_sinks.py, bench/status-sinks.sh).
ReceivedRequest = collections.namedtuple("ReceivedRequest", "port method body auth at")


class Receiver:
    """Webhook receivers sharing one record: every request in arrival order. mode: ok,
    slow (sleeps 30 s before 200), reject-pods (400 for kind pod, else 200)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # ReceivedRequest, in arrival order
        self.servers = {}
        self.connections = {}  # port -> sockets of the requests' connections

    def start(self, port, mode="ok"):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with rec.lock:
                    rec.connections.setdefault(port, []).append(self.connection)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with rec.lock:
                    rec.requests.append(ReceivedRequest(port, self.command, body, self.headers.get("Authorization"),
                                                        time.monotonic()))
                if mode == "slow":
                    time.sleep(30)
                code = 400 if mode == "reject-pods" and body["kind"] == "pod" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

        srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.servers[port] = srv

    def stop(self, port):
        """As a receiver that dies: kept-alive connections are cut too."""
        srv = self.servers.pop(port)
        srv.shutdown()
        srv.server_close()
        with self.lock:
            for conn in self.connections.pop(port, []):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def stop_all(self):
        for port in list(self.servers):
            self.stop(port)

    def latest(self):
        """uid -> the last pod or podDeleted body, and the last node body."""
        pods, node = {}, None
        with self.lock:
            for body in (r.body for r in self.requests):
                if body["kind"] in ("pod", "podDeleted"):
                    pods[body["object"]["metadata"]["uid"]] = body
                elif body["kind"] == "node":
                    node = body["object"]
        return pods, node
