"""containerd 1.6 + containerd-shim-runc-v2 driving the runtime through `ctr --runc-binary`."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import interop_lib as L

pytestmark = pytest.mark.containerd


# ctr (1.6) can lose the last output of a process that exits right after printing (a client-side
# io race, seen with runc as often as with berth; cf. containerd#770, concourse#6775): containers
# whose output is checked linger a moment before exiting.
LINGER = "usleep 300000"


def counter_script(path="/tmp/c"):
    # writes an increasing counter every 50 ms: frozen while paused, moving otherwise
    return f"i=0; while :; do i=$((i+1)); echo $i > {path}; usleep 50000; done"


def delete_status(r: L.Result) -> int:
    """ctr 1.6 `task delete` exits 0 and only warns "exit with non-zero exit code N"."""
    assert r.rc == 0, r
    m = re.search(r"non-zero exit code (\d+)", r.err)
    return int(m.group(1)) if m else 0


WAIT_SIZE = ('i=0; while [ $i -lt 50 ]; do s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ] && break; '
             'i=$((i+1)); usleep 100000; done; echo "size=$s"')


def read_counter(pid: int, path="/tmp/c") -> int:
    try:
        return int(Path(f"/proc/{pid}/root{path}").read_text().strip() or 0)
    except (OSError, ValueError):
        return -1


def test_run_foreground_exit_code(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", "echo out-$((6*7)); echo err-line >&2; " + LINGER + "; exit 7", rm=True)
    assert r.rc == 7, f"the container's exit code must propagate through ctr: {r!r}"
    assert "out-42" in r.out, r
    assert "err-line" in r.err, r
    # --rm: the task, the container and the runtime's state are gone
    assert cid not in ctd.ctr("container", "ls", "-q").out.split()
    assert not ctd.state_dir(cid).exists(), f"runtime state left behind: {list(ctd.state_dir(cid).iterdir())}"


def test_run_foreground_output_is_exact(ctd):
    """Nothing but the container's own output reaches its stdio (no runtime warnings)."""
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", "echo hello; " + LINGER, rm=True)
    assert r.rc == 0, r
    assert r.out == "hello\n", r
    assert r.err == "", r


def test_run_detached_exec_ps_kill_delete(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    assert ctd.task_status(cid) == "RUNNING"
    init = ctd.task_pid(cid)
    assert L.pid_alive(init)
    assert L.proc_stat(init)[0] == "sleep"

    # foreground exec: output and exit code come back
    e = L.run(ctd.exec_cmd(cid, "e1", "sh", "-c", "echo exec-out; echo exec-err >&2; " + LINGER + "; exit 3"), timeout=60)
    assert e.rc == 3, e
    assert "exec-out" in e.out and "exec-err" in e.err, e

    # the exec'd process runs in the container's namespaces
    e = L.run(ctd.exec_cmd(cid, "e2", "sh", "-c", "for f in /proc/1/ns/pid /proc/self/ns/pid /proc/self/ns/mnt "
                                                  "/proc/1/ns/mnt; do readlink $f; done; cat /proc/1/comm; " + LINGER), timeout=60)
    assert e.rc == 0, e
    lines = e.out.split()
    assert lines[0] == lines[1] and lines[2] == lines[3] and lines[4] == "sleep", e

    # ctr task ps: the runtime's `ps --format json` lists init and a detached exec
    d = L.run(ctd.exec_cmd(cid, "e3", "sleep", "999", detach=True), timeout=60)
    assert d.rc == 0, d
    ps = L.wait_for(lambda: (lambda r: r if r.rc == 0 and len(r.out.splitlines()) >= 3 else None)(
        ctd.ctr("task", "ps", cid)), timeout=10, what="ctr task ps to list 2 processes")
    pids = [int(l.split()[0]) for l in ps.out.splitlines()[1:]]
    assert init in pids, ps
    others = [p for p in pids if p != init]
    assert len(others) == 1 and L.proc_stat(others[0])[0] == "sleep", ps
    assert "e3" in ps.out, ps

    # ctr task kill (SIGKILL to init): task stops with 137, delete returns that status
    k = ctd.ctr("task", "kill", "-s", "SIGKILL", cid)
    assert k.rc == 0, k
    L.wait_for(lambda: ctd.task_status(cid) == "STOPPED", what="task to stop")
    dl = ctd.ctr("task", "delete", cid)
    assert delete_status(dl) == 137, f"the exit status (128+9) must reach containerd: {dl!r}"
    assert not ctd.state_dir(cid).exists(), "runtime state left behind after delete"
    assert not L.pid_alive(others[0]), "exec process survived the container's end"
    c = ctd.ctr("container", "delete", cid)
    assert c.rc == 0, c


def test_kill_default_sigterm_handled(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", "trap 'exit 42' TERM; echo ready > /tmp/ready; while :; do usleep 20000; done",
                detach=True)
    assert r.rc == 0, r
    pid = ctd.task_pid(cid)
    L.wait_for(lambda: Path(f"/proc/{pid}/root/tmp/ready").exists(), what="trap installed")
    k = ctd.ctr("task", "kill", cid)  # SIGTERM
    assert k.rc == 0, k
    L.wait_for(lambda: ctd.task_status(cid) == "STOPPED", what="task to stop on SIGTERM")
    dl = ctd.ctr("task", "delete", cid)
    assert delete_status(dl) == 42, dl


def test_kill_all(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", "sleep 1000 & sleep 1001 & wait", detach=True)
    assert r.rc == 0, r
    init = ctd.task_pid(cid)
    d = L.run(ctd.exec_cmd(cid, "bg", "sleep", "1002", detach=True), timeout=60)
    assert d.rc == 0, d
    procs = L.wait_for(lambda: (lambda l: l if len(l) >= 4 else None)(
        [p for p in L.all_pids() if L.cgroup_of(p) == L.cgroup_of(init)]), what="4 container processes")
    k = ctd.ctr("task", "kill", "-a", "-s", "SIGKILL", cid)
    assert k.rc == 0, k
    L.wait_for(lambda: ctd.task_status(cid) == "STOPPED", what="task to stop")
    L.wait_for(lambda: not any(L.pid_alive(p) for p in procs), timeout=10,
               what=f"every container process {procs} to die after kill --all")
    dl = ctd.ctr("task", "delete", cid)
    assert delete_status(dl) == 137, dl


def test_pause_resume(ctd, runtime):
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", counter_script(), detach=True)
    assert r.rc == 0, r
    pid = ctd.task_pid(cid)
    L.wait_for(lambda: read_counter(pid) > 2, what="counter to run")
    p = ctd.ctr("task", "pause", cid)
    assert p.rc == 0, p
    assert ctd.task_status(cid) == "PAUSED"
    time.sleep(0.2)
    a = read_counter(pid)
    time.sleep(0.6)
    b = read_counter(pid)
    assert a == b, f"counter moved while paused: {a} -> {b}"
    s = ctd.ctr("task", "resume", cid)
    assert s.rc == 0, s
    assert ctd.task_status(cid) == "RUNNING"
    L.wait_for(lambda: read_counter(pid) > b + 2, what="counter to move after resume")


def test_exec_tty(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    t = L.run_in_pty(ctd.exec_cmd(cid, "tty1", "sh", "-c", "tty; " + WAIT_SIZE + "; echo TERMIO-$((1+1)); " + LINGER + "; exit 5", tty=True),
                     rows=33, cols=111, timeout=60)
    assert t.rc == 5, t
    assert "/dev/pts/" in t.out, t
    assert "size=33 111" in t.out, f"the client's window size must reach the exec'd process: {t!r}"
    assert "TERMIO-2" in t.out, t


def test_exec_tty_interactive(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    t = L.run_in_pty(ctd.exec_cmd(cid, "tty2", "sh", "-c", "echo PROMPT; read x; echo got-$x; " + LINGER, tty=True),
                     send=[("PROMPT", b"hello\r")], timeout=60)
    assert t.rc == 0, t
    assert "got-hello" in t.out, t


def test_run_tty(ctd):
    cid = ctd.name()
    t = L.run_in_pty(ctd.run_cmd(cid, "sh", "-c", "tty; " + WAIT_SIZE + "; " + LINGER + "; exit 4", rm=True, tty=True), rows=40, cols=100,
                     timeout=60)
    assert t.rc == 4, t
    assert "/dev/pts/0" in t.out or "/dev/console" in t.out, t
    assert "size=40 100" in t.out, t


def test_no_leaked_fds_or_signals(ctd):
    """The shim's listening socket (fd 3, no CLOEXEC) must not reach the container."""
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", "ls /proc/self/fd; " + LINGER, rm=True)
    assert r.rc == 0, r
    assert r.out.split() == ["0", "1", "2", "3"], f"container saw extra fds: {r!r}"
    cid = ctd.name()
    r = ctd.run(cid, "sh", "-c", "cat /proc/self/status; " + LINGER, rm=True)
    assert r.rc == 0, r
    st = dict(l.split(":\t", 1) for l in r.out.splitlines() if ":\t" in l)
    assert st["SigIgn"].strip() == "0000000000000000", st["SigIgn"]
    assert st["SigBlk"].strip() == "0000000000000000", st["SigBlk"]


@pytest.mark.parametrize("argv0,needle", [
    ("no-such-command", "executable file not found"),
    ("/no/such/binary", "no such file or directory"),
])
def test_missing_executable_error_surfaces(ctd, argv0, needle):
    cid = ctd.name()
    r = ctd.run(cid, argv0, rm=True, timeout=60)
    assert r.rc != 0, r
    msg = r.err + r.out
    assert "OCI runtime create failed" in msg or "OCI runtime start failed" in msg, msg
    assert needle in msg, f"the runtime's error must surface through containerd: {msg}"
    assert "unable to retrieve OCI runtime error" not in msg, f"log.json unusable to the shim: {msg}"
    # nothing left running or registered
    assert ctd.task_status(cid) is None


def test_exec_missing_executable_error(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    e = L.run(ctd.exec_cmd(cid, "bad", "no-such-command"), timeout=60)
    assert e.rc != 0, e
    assert "OCI runtime exec failed" in e.err, e
    assert "executable file not found" in e.err, e
    assert ctd.task_status(cid) == "RUNNING"


def test_delete_running_refused_then_force(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    d = ctd.ctr("task", "delete", cid)
    assert d.rc != 0 and "running" in (d.err + d.out).lower(), d
    f = ctd.ctr("task", "delete", "-f", cid)
    assert f.rc in (0, 137), f
    assert ctd.task_status(cid) is None
    assert not ctd.state_dir(cid).exists()


def test_run_readonly_root_and_bind_mount(ctd, world):
    data = world.root / f"ctr-bind-{ctd.rt.name}"
    data.mkdir(exist_ok=True)
    (data / "f").write_text("from-host\n")
    cid = ctd.name()
    r = L.run(ctd.run_cmd(cid, "sh", "-c", "cat /data/f; touch /x 2>&1; touch /data/y 2>&1; echo end; " + LINGER, rm=True,
                          extra=("--read-only", "--mount", f"type=bind,src={data},dst=/data,options=rbind:ro")),
              timeout=60)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "from-host", r
    assert sum("Read-only file system" in l for l in lines) == 2, f"root and the ro bind must be read-only: {r!r}"
    assert not (data / "y").exists()


def test_exec_as_user_and_cwd(ctd):
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    cmd = ctd.cmd("task", "exec", "--exec-id", "u1", "--fifo-dir", ctd.fifo, "--user", "65534", "--cwd", "/tmp",
                  cid, "sh", "-c", "id -u; id -g; pwd; " + LINGER)
    e = L.run(cmd, timeout=60)
    assert e.rc == 0, e
    assert e.out.split() == ["65534", "65534", "/tmp"], e


def test_log_json_is_valid_json_lines(ctd, containerd_daemon):
    """The shim decodes <bundle>/log.json as a JSON stream on any failure: every line must parse."""
    cid = ctd.name()
    r = ctd.run(cid, "sleep", "1000", detach=True)
    assert r.rc == 0, r
    L.run(ctd.exec_cmd(cid, "bad", "no-such-command"), timeout=60)
    ctd.ctr("task", "pause", cid)
    ctd.ctr("task", "resume", cid)
    ctd.ctr("task", "kill", "-s", "SIGKILL", cid)
    log = containerd_daemon.root / "state" / "io.containerd.runtime.v2.task" / ctd.ns / cid / "log.json"
    text = log.read_text()
    for line in text.splitlines():
        obj = json.loads(line)
        assert obj.get("level") in ("debug", "info", "warning", "error"), line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", obj.get("time", "")), line
        assert isinstance(obj.get("msg"), str), line
