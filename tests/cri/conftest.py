"""berthd test harness: each test gets its own berthd (root, state dir, socket, config).

Run through tests/cri/run.sh (installs what is missing, private mount namespace,
temp root) or directly as root: /usr/bin/python3 -m pytest -q tests/cri.
Environment: BERTHD (default build/cri/berthd), CRI_TEST_ROOT (temp root).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from cri_client import CriClient, load_stubs  # noqa: E402

BERTHD = os.environ.get("BERTHD", os.path.join(REPO, "build", "cri", "berthd"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cgroupv2: needs cgroup v2 with controllers (run in the VM: tests/vm/run-cgroup-tests.sh)")


def pytest_report_header(config):
    return [f"berthd under test: {BERTHD}"]


@pytest.fixture(scope="session")
def pb2():
    return load_stubs()[0]


@pytest.fixture(scope="session")
def session_root():
    base = os.environ.get("CRI_TEST_ROOT")
    root = tempfile.mkdtemp(prefix="cri-", dir=base)
    yield root
    shutil.rmtree(root, ignore_errors=True)


class Berthd:
    """One berthd process with its own directories. Only the PID it started is ever signalled."""

    def __init__(self, workdir, config="", args=(), env=None):
        self.workdir = workdir
        self.root = os.path.join(workdir, "root")
        self.state = os.path.join(workdir, "state")
        self.socket = os.path.join(self.state, "berthd.sock")
        self.config_path = os.path.join(workdir, "berthd.toml")
        self.log_path = os.path.join(workdir, "berthd.log")
        self.args = list(args)
        self.env = env
        self.proc = None
        self.write_config(config)

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(f'root = "{self.root}"\nstate_dir = "{self.state}"\n' + text)

    def command(self):
        return [BERTHD, "--config", self.config_path, "--log-level", "debug"] + self.args

    def start(self, wait=True, timeout=30):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.update(self.env or {})
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        if wait:
            self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"berthd exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.socket):
                try:
                    with CriClient(self.socket) as c:
                        c.version(timeout=2)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"berthd did not serve on {self.socket} within {timeout}s:\n{self.log()}")

    def client(self):
        return CriClient(self.socket)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"berthd did not exit within {timeout}s of signal {sig}:\n{self.log()}")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def workdir(session_root, request):
    # Short names: a unix socket path must stay under 108 bytes.
    d = tempfile.mkdtemp(prefix=request.node.name[5:25] + "-", dir=session_root)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_berthd(workdir):
    """make_berthd(config="", args=(), env=None, name="b") -> Berthd (not started)."""
    started = []

    def make(config="", args=(), env=None, name="b"):
        d = os.path.join(workdir, name)
        os.makedirs(d, exist_ok=True)
        b = Berthd(d, config, args, env)
        started.append(b)
        return b
    yield make
    for b in started:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.kill()
            b.proc.wait()


@pytest.fixture
def notify_socket(workdir):
    """A datagram socket playing systemd's NOTIFY_SOCKET: (path, receive(timeout) -> str)."""
    path = os.path.join(workdir, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)

    def receive(timeout=30):
        s.settimeout(timeout)
        return s.recv(4096).decode()
    yield path, receive
    s.close()


def run_berthd(args, timeout=30):
    """Runs berthd to completion (for start-up errors): CompletedProcess with text output."""
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([BERTHD] + list(args), capture_output=True, text=True, timeout=timeout, env=env)


# ---- pods and containers (tests/cri/pod_lib.py) --------------------------------------

import pod_lib  # noqa: E402


@pytest.fixture(scope="session")
def pod_registry(session_root):
    """A registry with busybox-static (every applet linked) as library/busybox:latest."""
    import oci_image
    from registry import Registry
    reg = Registry(workdir=os.path.join(session_root, "pod-registry"))
    reg.start()
    oci_image.push(oci_image.build_image("busybox-all"), reg.addr, "library/busybox:latest")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def cni_world(session_root):
    """CNI config + bin dirs, a cache and an IPAM store of the session; the bridge goes at the end."""
    base = os.path.join(session_root, "cni")
    bridge = f"bt-cri{pod_lib.TAG}"[:15]
    w = {"conf": os.path.join(base, "net.d"), "bin": os.path.join(base, "bin"),
         "cache": os.path.join(base, "cache"), "ipam": os.path.join(base, "ipam"), "bridge": bridge,
         "subnet": os.environ.get("CRI_SUBNET", "10.231.88.0/24")}
    pod_lib.write_cni(w["conf"], w["bin"], bridge, w["subnet"], w["ipam"])
    yield w
    subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)


@pytest.fixture
def make_world(make_berthd, pb2, pod_registry, cni_world):
    """make_world(extra_config="", name="w") -> World (started); every pod is removed and
    leaks are checked at the end of the test."""
    made = []

    def make(extra_config="", name="w", start=True, cni=True):
        b = make_berthd(name=name)
        # Short state dir: shim sockets live under <state>/shims/<64 hex id>/ (108-byte limit).
        b.state = tempfile.mkdtemp(prefix=f"bt{pod_lib.TAG}_", dir="/run")
        b.socket = os.path.join(b.state, "berthd.sock")
        conf = cni_world["conf"] if cni else os.path.join(b.workdir, "no-cni")
        w = pod_lib.World(b, pb2, pod_registry.url, conf, cni_world["bin"], cni_world["cache"],
                          cni_world["ipam"], extra_config)
        made.append(w)
        if start:
            w.up()
            w.client.pull("busybox")
        return w
    yield make
    for w in made:
        if w.berthd.proc is None or w.berthd.proc.poll() is not None:
            w.up()
        try:
            w.remove_everything()
            w.assert_no_leaks()
        finally:
            w.berthd.stop()
            shutil.rmtree(w.state, ignore_errors=True)


@pytest.fixture
def world(make_world):
    return make_world()
