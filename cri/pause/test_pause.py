"""berth-pause as PID 1 of a new PID namespace (unshare --pid --fork): it reaps the
orphans reparented to it, exits 0 on SIGTERM and SIGINT sent from outside and from
inside the namespace, prints its version with -v and is a small static binary.

Run by `meson test berth-pause` (BERTH_PAUSE names the binary); the namespace tests
need root and are skipped without it. Every process is ours and is killed at the end.
"""
import os
import signal
import subprocess
import time

import pytest

PAUSE = os.environ.get("BERTH_PAUSE", os.path.join(os.path.dirname(__file__), "..", "..", "build", "cri", "pause",
                                                   "berth-pause"))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="PID namespaces need root")


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].split()
    return None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def state(pid):
    try:
        return status_field(pid, "State")[0]
    except FileNotFoundError:
        return None


class PodPid:
    """unshare --pid --fork berth-pause; .pid is the pause process (host PID)."""

    def __init__(self):
        # --kill-child: should unshare die, so does pause (PR_SET_PDEATHSIG).
        self.unshare = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", PAUSE],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = None
        try:
            self.pid = wait_for(lambda: children(self.unshare.pid) and children(self.unshare.pid)[0],
                                "the pause process")
            wait_for(lambda: os.readlink(f"/proc/{self.pid}/exe").endswith("berth-pause"), "pause to exec")
            # Until it waits in rt_sigtimedwait(2) its signals are not blocked yet, and a
            # SIGTERM from outside would kill it by default instead of ending it with 0.
            wait_for(lambda: "sigtimedwait" in read(f"/proc/{self.pid}/wchan"), "pause to wait for signals")
        except BaseException:
            self.close()
            raise

    def enter(self, *cmd, check=True):
        """Runs cmd inside the pod's PID namespace; returns its stdout."""
        out = subprocess.run(["nsenter", "-t", str(self.pid), "-p", "--", *cmd], check=check,
                             capture_output=True, text=True)
        return out.stdout

    def close(self):
        if self.unshare.poll() is None:
            os.kill(self.pid or self.unshare.pid, signal.SIGKILL)
            self.unshare.wait(timeout=10)


@pytest.fixture
def pod():
    p = PodPid()
    yield p
    p.close()


def test_version():
    out = subprocess.run([PAUSE, "-v"], capture_output=True, text=True, timeout=5)
    assert out.returncode == 0
    assert out.stdout.startswith("berth-pause ") and out.stdout.endswith("\n")


def test_static_and_small():
    with open(PAUSE, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF"
    # No PT_INTERP program header: no dynamic loader (64-bit ELF).
    import struct
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    assert 3 not in types, "berth-pause has an interpreter: not static"
    if os.uname().machine in ("x86_64", "aarch64"):
        assert len(data) < 16 * 1024, f"{len(data)} bytes"


@needs_root
def test_pid1_reaps_orphans_and_exits_0_on_sigterm(pod):
    assert status_field(pod.pid, "NSpid")[-1] == "1"
    # A shell in the namespace leaves a sleeping child behind: it is reparented to PID 1.
    inner = pod.enter("sh", "-c", "sleep 0.5 >/dev/null 2>&1 & echo $!")
    assert inner.strip().isdigit()
    orphans = wait_for(lambda: children(pod.pid), "the orphan to be reparented to pause")
    assert len(orphans) == 1
    orphan = orphans[0]
    assert status_field(orphan, "NSpid")[-1] == inner.strip()
    # When it exits, pause reaps it: no zombie stays.
    wait_for(lambda: state(orphan) is None, "the orphan to be reaped (it stayed a zombie)", timeout=5)
    # Many at once, some already zombies when they are reparented.
    pod.enter("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do (exit 3) & done; "
                          "sleep 0.05 & true")
    wait_for(lambda: not children(pod.pid), "every orphan to be reaped")
    assert state(pod.pid) in ("S", "R")

    os.kill(pod.pid, signal.SIGTERM)
    assert pod.unshare.wait(timeout=5) == 0


@needs_root
@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_exits_0_on_a_signal_from_inside(pod, sig):
    # From inside the namespace PID 1 only gets signals it handles: blocked ones count.
    # (When PID 1 exits the kernel kills the rest of the namespace, kill itself too if it
    # has not exited yet: its status does not matter.)
    pod.enter("kill", f"-{sig}", "1", check=False)
    assert pod.unshare.wait(timeout=5) == 0


@needs_root
def test_other_signals_do_not_stop_it(pod):
    pod.enter("kill", "-HUP", "1")  # default disposition, PID 1 of its namespace: dropped
    pod.enter("kill", "-USR1", "1")
    time.sleep(0.1)
    assert pod.unshare.poll() is None
    os.kill(pod.pid, signal.SIGINT)
    assert pod.unshare.wait(timeout=5) == 0


@needs_root
def test_sigkill_from_outside(pod):
    os.kill(pod.pid, signal.SIGKILL)
    assert pod.unshare.wait(timeout=5) != 0
