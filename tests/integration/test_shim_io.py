"""berth-shim: attach (tty and pipes), resize, log reopen under load, exec.

Exec runs against berth and, as a control, runc: the shim only needs a runtime with runc's
`exec --process F --detach --pid-file P` CLI.
"""
import json
import os
import re
import time
from pathlib import Path

import pytest

import helpers as H
from helpers import set_args, sh, update_config
from shim_helpers import (F_CLOSE_STDIN, F_EXIT, F_RESIZE, F_STARTED, F_STDIN, F_STDOUT, have_runc, joined,
                          read_log, runc_only, shim)  # noqa: F401


def tty_bundle(bundle, *args):
    def cfg(c):
        c["process"]["terminal"] = True
        c["process"]["args"] = list(args) or ["sh"]
    update_config(bundle, cfg)


# ---------------------------------------------------------------------------- attach


def test_attach_and_resize_on_tty(shim, bundle):
    tty_bundle(bundle)
    h = shim.start(bundle)
    assert h.ctl("state")["terminal"] is True
    with h.attach() as c:
        assert c.recv()[0] == F_STARTED
        c.send(F_RESIZE, b"30 100")
        c.send(F_STDIN, b"stty size; echo mark-$((40+2))\n")
        out, _, _ = c.collect(until=b"mark-42")
        assert b"30 100" in out, out
        assert h.ctl("resize 12 34")["ok"]
        c.send(F_STDIN, b"stty size; exit 6\n")
        out, _, exit_ = c.collect()
        assert b"12 34" in out, out
        assert exit_["exit_code"] == 6
    assert h.exit_status()["exit_code"] == 6
    text = joined(h.records())
    assert "mark-42" in text and "12 34" in text, text
    assert all(s == "stdout" for _, s, _, _ in h.records()), "a tty has one stream"


def test_two_attach_clients_see_the_same_output(shim, bundle):
    sh(bundle, "sleep 0.5; echo shared; sleep 0.3")
    h = shim.start(bundle)
    with h.attach() as a, h.attach() as b:
        for c in (a, b):
            assert c.recv()[0] == F_STARTED
        for c in (a, b):
            out, err, exit_ = c.collect()
            assert out == b"shared\n" and exit_["exit_code"] == 0


def test_attach_stdin_pipe(shim, bundle):
    set_args(bundle, "sh", "-c", "while read line; do echo got-$line; done; echo eof")
    h = shim.start(bundle, stdin=True)
    with h.attach() as c:
        assert c.recv()[0] == F_STARTED
        c.send(F_STDIN, b"one\ntwo\n")
        c.collect(until=b"got-two")
        c.send(F_CLOSE_STDIN)
        out, _, exit_ = c.collect()
        assert exit_["exit_code"] == 0
    assert joined(h.records()) == "got-one\ngot-two\neof\n"


def test_close_stdin_over_ctl(shim, bundle):
    set_args(bundle, "cat")
    h = shim.start(bundle, stdin=True)
    with h.attach() as c:
        c.recv()
        c.send(F_STDIN, b"hello\n")
        c.collect(until=b"hello")
    assert h.ctl("close-stdin")["ok"]
    assert h.exit_status()["exit_code"] == 0


def test_stdin_once(shim, bundle):
    set_args(bundle, "cat")
    h = shim.start(bundle, stdin=True, extra=["--stdin-once"])
    with h.attach() as c:
        c.recv()
        c.send(F_STDIN, b"once\n")
        c.collect(until=b"once")
    # the first attach session ended: stdin closed, cat exits
    assert h.exit_status()["exit_code"] == 0


def test_attach_client_vanishes_mid_stream(shim, bundle):
    sh(bundle, "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; sleep 0.2; exit 8")
    h = shim.start(bundle)
    for _ in range(3):
        with h.attach() as c:
            try:
                c.recv()
                c.recv()
            except ConnectionResetError:
                pass  # dropped as too slow: the shim never waits for an attach client
        # closed without a word, data still in flight
    st = h.exit_status(timeout=30)
    assert st["exit_code"] == 8
    lines = joined(h.records()).splitlines()
    assert lines == [f"line-{i}" for i in range(20000)], "the log lost nothing"


def test_attach_after_exit_gets_the_status(shim, bundle):
    sh(bundle, "exit 3")
    h = shim.start(bundle)
    h.exit_status()
    res = shim.client("attach", h.cid)
    assert res.returncode == 1 and b"not running" in res.stderr, res


def test_attach_cli(shim, bundle):
    set_args(bundle, "sh", "-c", "read x; echo hello-$x; exit 4")
    h = shim.start(bundle, stdin=True)
    res = shim.client("attach", h.cid, input=b"world\n")
    assert res.returncode == 4, res
    assert res.stdout == b"hello-world\n"


# ---------------------------------------------------------------------------- log reopen


def test_reopen_during_heavy_output_loses_nothing(shim, bundle):
    n = 60000
    sh(bundle, f"i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); done; "
               f"head -c 50000 /dev/zero | tr '\\0' z; echo; exit 0")
    h = shim.start(bundle)
    rotated = []
    try:
        while h.ctl("state")["status"] == "running":
            if h.log.exists() and h.log.stat().st_size > 0:
                dst = h.log.with_name(f"{h.log.name}.{len(rotated)}")
                os.rename(h.log, dst)  # kubelet's rotation: rename, then ReopenContainerLog
                rotated.append(dst)
                reply = h.ctl("reopen-log")
                assert reply["ok"], reply
            time.sleep(0.02)
    except OSError:
        pass  # the shim finished between two requests
    h.exit_status(timeout=60)
    assert len(rotated) >= 3, f"only {len(rotated)} rotations happened while the container ran"
    recs = []
    for p in rotated + [h.log]:
        if p.exists():
            recs += read_log(p)
    lines = joined(recs).splitlines()
    assert lines[:n] == [f"line-{i}" for i in range(n)]
    assert lines[n:] == ["z" * 50000]


def test_reopen_without_log(shim, bundle):
    set_args(bundle, "sleep", "1000")
    h = shim.start(bundle, log=False)
    assert h.ctl("reopen-log")["ok"] is False
    h.kill()
    h.exit_status()


# ---------------------------------------------------------------------------- exec


@pytest.fixture(params=["berth", "runc"])
def exec_container(request, shim, bundle):
    if request.param == "runc" and not have_runc():
        pytest.skip("runc not installed (apt-get install runc)")
    set_args(bundle, "sleep", "1000")
    return shim.start(bundle, runc=request.param == "runc")


def test_exec_output_and_exit_code(exec_container):
    h = exec_container
    out, err, exit_ = h.exec_sync(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (out, err, exit_["exit_code"], exit_["timed_out"]) == (b"out\n", b"err\n", 7, False)
    assert joined(h.records()) == "", "exec output goes to its client, not to the container log"


def test_exec_with_timeout_kills(exec_container):
    h = exec_container
    t0 = time.monotonic()
    out, err, exit_ = h.exec_sync(["sh", "-c", "echo before; sleep 100"], timeout=1)
    elapsed = time.monotonic() - t0
    assert exit_["timed_out"] is True and exit_["signal"] == 9, exit_
    assert out == b"before\n"
    assert elapsed < 10, elapsed
    assert h.ctl("state")["status"] == "running", "the container survives an exec's timeout"


def test_exec_stdin(exec_container):
    out, _, exit_ = exec_container.exec_sync(["sh", "-c", "cat; echo done"], stdin=b"data\n" * 10000)
    assert out == b"data\n" * 10000 + b"done\n" and exit_["exit_code"] == 0


def test_exec_tty_and_resize(exec_container):
    h = exec_container
    with h.exec({"args": ["sh"], "tty": True}) as c:
        typ, payload = c.recv()
        assert typ == F_STARTED and json.loads(payload)["pid"] > 0
        c.send(F_RESIZE, b"25 90")
        c.send(F_STDIN, b"tty; stty size; exit 3\n")
        out, _, exit_ = c.collect()
    assert b"/dev/pts/" in out and b"25 90" in out, out
    assert exit_["exit_code"] == 3


def test_exec_failure_reports_runtime_error(exec_container):
    out, err, exit_ = exec_container.exec_sync(["/no/such/binary"])
    assert exit_ is None
    assert b"runtime exec failed" in err and b"no such file or directory" in err, err


def test_exec_full_process_spec(exec_container, bundle):
    process = H.read_config(bundle)["process"]
    process["args"] = ["sh", "-c", "echo $FOO; pwd"]
    process["env"] = process["env"] + ["FOO=bar"]
    process["cwd"] = "/tmp"
    with exec_container.exec({"process": process}) as c:
        assert c.recv()[0] == F_STARTED
        out, _, exit_ = c.collect()
    assert out == b"bar\n/tmp\n" and exit_["exit_code"] == 0


def test_exec_client_vanishes(exec_container):
    """The client of a running exec disappears: the process loses its stdio (EOF,
    EPIPE) and is still reaped; the shim serves on."""
    h = exec_container
    with h.exec({"args": ["sh", "-c", "while echo tick; do sleep 0.05; done"]}) as c:
        assert c.recv()[0] == F_STARTED
        c.recv()
    time.sleep(0.5)
    out, _, exit_ = h.exec_sync(["echo", "still-serving"])
    assert out == b"still-serving\n"
    kids = [p for p in H.all_pids() if (H.proc_stat(p) or ("", 0, 0))[1] == h.shim_pid]
    assert kids == [h.pid], f"the vanished exec was not reaped: {kids}"


def test_exec_cli(exec_container, shim):
    h = exec_container
    res = shim.client("exec", h.cid, "--", "sh", "-c", "echo cli; exit 5")
    assert res.returncode == 5 and res.stdout == b"cli\n", res
    res = shim.client("exec", "--timeout", "1", h.cid, "--", "sleep", "50")
    assert res.returncode == 137 and b"timed out" in res.stderr, res
    res = shim.client("exec", "-i", h.cid, "--", "cat", input=b"piped\n")
    assert res.stdout == b"piped\n"


def test_exec_when_container_exits(exec_container):
    """Exec sessions end with their container (killed, reaped, client told)."""
    h = exec_container
    with h.exec({"args": ["sleep", "100"]}) as c:
        assert c.recv()[0] == F_STARTED
        h.kill("KILL")
        typ, payload = c.recv(15)
        assert typ in (F_EXIT, b"f"), (typ, payload)
    assert h.exit_status()["signal"] == 9
    h.wait_shim_gone()


def test_many_execs_leave_no_fds_or_zombies(exec_container):
    h = exec_container
    fds = sorted(os.listdir(f"/proc/{h.shim_pid}/fd"))
    for i in range(10):
        out, _, exit_ = h.exec_sync(["echo", str(i)], timeout=10 if i % 2 else None)
        assert out == f"{i}\n".encode()
    time.sleep(0.2)
    assert sorted(os.listdir(f"/proc/{h.shim_pid}/fd")) == fds
    assert sorted(os.listdir(h.dir)) == sorted(["attach.sock", "container.pid", "ctl.sock", "runtime.log", "shim.pid"])
