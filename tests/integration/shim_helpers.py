"""Helpers for berth-shim's integration tests (tests/integration/test_shim*.py).

The shim under test is $BERTH_SHIM (default: build/shim/berth-shim); it drives the
suite's $RUNTIME (runc as a control where a test asks for it). `shim` fixture:
starts shims with a per-test state dir, speaks the ctl/attach protocols
(docs/shim.md), and at teardown makes sure every shim it started is gone.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import helpers as H

SHIM = os.environ.get("BERTH_SHIM") or str(H.REPO / "build" / "shim" / "berth-shim")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([PF]) (.*)$", re.S)

# attach.sock frame types (shim/lib/protocol.hpp)
F_ATTACH, F_EXEC, F_STDIN, F_CLOSE_STDIN, F_RESIZE = b"a", b"x", b"i", b"c", b"w"
F_STARTED, F_STDOUT, F_STDERR, F_FAILED, F_EXIT = b"s", b"o", b"e", b"f", b"q"
MAX_PAYLOAD = 32768


def have_runc() -> bool:
    return H.is_executable_file(RUNC)


def read_log(path) -> list[tuple[str, str, str, str]]:
    """The CRI log as (timestamp, stream, tag, message) records; asserts the format."""
    data = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    assert data == "" or data.endswith("\n"), f"log does not end with a newline: {data[-100:]!r}"
    out = []
    for line in data.split("\n")[:-1]:
        m = LOG_RE.match(line)
        assert m, f"not a CRI log record: {line[:200]!r}"
        out.append(m.groups())
    return out


def joined(records, stream=None) -> str:
    """Reassemble the text of the log: P records continue, F records end a line."""
    text = ""
    for _, s, tag, msg in records:
        if stream and s != stream:
            continue
        text += msg + ("\n" if tag == "F" else "")
    return text


class Handle:
    """One shim-served container."""

    def __init__(self, sh: "Shim", cid: str, runtime: str, runtime_args: list[str], log: Path | None):
        self.sh, self.cid, self.runtime, self.runtime_args, self.log = sh, cid, runtime, runtime_args, log
        self.pid = 0
        self.shim_pid = 0
        self.dir = Path(sh.state) / cid
        self.exit_file = Path(sh.exits) / cid

    # ---- files -------------------------------------------------------------------
    def exit_status(self, timeout=15.0) -> dict:
        H.wait_for(lambda: self.exit_file.exists(), timeout=timeout, what=f"exit file of {self.cid}")
        return json.loads(self.exit_file.read_text())

    def wait_shim_gone(self, timeout=15.0) -> None:
        H.wait_for(lambda: not H.pid_alive(self.shim_pid), timeout=timeout, what=f"shim {self.shim_pid} to exit")

    def records(self):
        return read_log(self.log)

    # ---- runtime -----------------------------------------------------------------
    def runtime_call(self, *args, check=False):
        cp = H.host([self.runtime, *self.runtime_args, *map(str, args)], check=check)
        return cp

    def kill(self, sig="KILL"):
        return self.runtime_call("kill", self.cid, sig)

    # ---- ctl.sock ----------------------------------------------------------------
    def ctl(self, line: str, timeout=10.0) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.dir / "ctl.sock"))
            s.sendall(line.encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise AssertionError(f"ctl {line!r}: connection closed, got {buf!r}")
                buf += chunk
            return json.loads(buf.split(b"\n")[0])

    # ---- attach.sock ---------------------------------------------------------------
    def connect(self) -> "Conn":
        return Conn(self.dir / "attach.sock")

    def attach(self) -> "Conn":
        c = self.connect()
        c.send(F_ATTACH)
        return c

    def exec(self, request: dict) -> "Conn":
        c = self.connect()
        c.send(F_EXEC, json.dumps(request).encode())
        return c

    def exec_sync(self, args, timeout=None, stdin: bytes | None = None, tty=False, wait=30.0):
        """Run a process, collect (stdout, stderr, exit dict) - what CRI's ExecSync needs."""
        req = {"args": list(args), "tty": tty, "stdin": stdin is not None}
        if timeout:
            req["timeout"] = timeout
        with self.exec(req) as c:
            typ, payload = c.recv(wait)
            if typ == F_FAILED:
                return b"", payload, None
            assert typ == F_STARTED, (typ, payload)
            if stdin is not None:
                for i in range(0, len(stdin), MAX_PAYLOAD):
                    c.send(F_STDIN, stdin[i:i + MAX_PAYLOAD])
                c.send(F_CLOSE_STDIN)
            return c.collect(wait)


class Conn:
    """A SOCK_SEQPACKET connection to attach.sock."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(10)
        self.sock.connect(str(path))

    def send(self, typ: bytes, payload: bytes = b"") -> None:
        self.sock.send(typ + payload)

    def recv(self, timeout=10.0) -> tuple[bytes, bytes]:
        self.sock.settimeout(timeout)
        msg = self.sock.recv(65536)
        if not msg:
            return b"", b""
        return msg[:1], msg[1:]

    def collect(self, timeout=30.0, until: bytes | None = None):
        """Read frames until the exit frame (or until `until` shows up in stdout)."""
        out, err = b"", b""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no exit frame after {timeout}s; stdout={out[-500:]!r} stderr={err[-500:]!r}")
            typ, payload = self.recv(left)
            if typ == F_STDOUT:
                out += payload
                if until is not None and until in out:
                    return out, err, None
            elif typ == F_STDERR:
                err += payload
            elif typ == F_EXIT:
                return out, err, json.loads(payload)
            elif typ == F_FAILED:
                raise AssertionError(f"shim reported failure: {payload!r}")
            elif typ == b"":
                raise AssertionError(f"connection closed without an exit frame; stdout={out[-500:]!r}")

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Shim:
    """Starts shims for a test; the `shim` fixture."""

    def __init__(self, env):
        self.env = env
        base = env.s.sock / f"{env.key}-sh"   # short: unix socket paths must fit 108 bytes
        base.mkdir()
        self.base = base
        self.state = base / "st"
        self.exits = base / "ex"
        self.logs = env.dir / "logs"
        self.logs.mkdir()
        self.handles: list[Handle] = []

    def runc_args(self):
        root = self.env.dir / "runc-root"
        root.mkdir(exist_ok=True)
        return ["--root", str(root)]

    def cmd(self, *args) -> list[str]:
        return [SHIM, *map(str, args)]

    def client(self, *args, check=False, input=None, timeout=30) -> subprocess.CompletedProcess:
        p = H.spawn(self.cmd(*args[:1], "--state-dir", self.state, "--exit-dir", self.exits, *args[1:]),
                    stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        finally:
            H.kill_and_finish(p) if p.returncode is None else H.finish(p)
        cp = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if check:
            assert cp.returncode == 0, f"{p.args}: rc={cp.returncode} err={err!r}"
        return cp

    def args_for(self, bundle, cid, runtime, runtime_args, log, stdin, start, delete, extra):
        a = ["--id", cid, "--bundle", bundle, "--runtime", runtime, "--state-dir", self.state,
             "--exit-dir", self.exits, "--shim-log", Path(os.environ.get("BERTH_SHIM_LOG_DIR") or self.env.dir) / f"shim-{cid}.log"]
        for r in runtime_args:
            a.append(f"--runtime-arg={r}")
        if log:
            a += ["--log-path", log]
        if stdin:
            a.append("--stdin")
        if start:
            a.append("--start")
        if delete:
            a.append("--delete")
        return a + list(extra)

    def launch(self, bundle, cid=None, *, runc=False, log=True, stdin=False, start=True, delete=True,
               extra=(), check=True, wait=True):
        """Start a shim for a new container; returns (Handle, CompletedProcess-like Result)."""
        cid = cid or self.env.new_id("s")
        runtime = RUNC if runc else H.RUNTIME
        runtime_args = self.runc_args() if runc else ["--root", self.env.root]
        log_path = self.logs / f"{cid}.log" if log is True else (Path(log) if log else None)
        h = Handle(self, cid, runtime, runtime_args, log_path)
        if not runc:
            self.env.ids.append(cid)
        self.handles.append(h)
        args = self.args_for(bundle, cid, runtime, runtime_args, log_path, stdin, start, delete, extra)
        p = H.spawn(self.cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not wait:
            return h, p
        out, err = p.communicate(timeout=60)
        H.finish(p)
        res = subprocess.CompletedProcess(p.args, p.returncode, out.decode(), err.decode())
        if check:
            assert res.returncode == 0, f"shim failed: rc={res.returncode} stderr={res.stderr!r}"
        if res.returncode == 0:
            info = json.loads(res.stdout)
            h.pid, h.shim_pid = info["pid"], info["shim_pid"]
            self.env.track_pid(h.pid)
        return h, res

    def start(self, bundle, cid=None, **kw) -> Handle:
        return self.launch(bundle, cid, **kw)[0]

    def teardown(self) -> list[str]:
        problems = []
        for h in self.handles:
            if h.shim_pid and H.pid_alive(h.shim_pid):
                h.kill()
                with contextlib.suppress(Exception):
                    h.runtime_call("delete", "--force", h.cid)
                try:
                    h.wait_shim_gone(15)
                except AssertionError:
                    problems.append(f"shim {h.shim_pid} of {h.cid} still running at teardown")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(h.shim_pid, signal.SIGKILL)
            if h.runtime == RUNC:
                with contextlib.suppress(Exception):
                    h.runtime_call("delete", "--force", h.cid)
            if h.dir.exists() and h.shim_pid:
                problems.append(f"state dir {h.dir} left: {os.listdir(h.dir)}")
        H.reap_orphans()
        return problems


@pytest.fixture
def shim(env):
    if not H.is_executable_file(SHIM):
        pytest.skip(f"berth-shim not built at {SHIM} (set BERTH_SHIM)")
    s = Shim(env)
    yield s
    problems = s.teardown()
    if problems:
        pytest.fail("shim teardown:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def runc_only():
    if not have_runc():
        pytest.skip("runc not installed (apt-get install runc)")
