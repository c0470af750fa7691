"""podman 4.3 + conmon 2.1 with the runtime registered under the name `runc` (JSON logging)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import interop_lib as L
from test_containerd import WAIT_SIZE, counter_script, read_counter

pytestmark = pytest.mark.podman

RUNNING_TRAP = "trap 'exit 0' TERM; echo ready > /tmp/ready; while :; do usleep 50000; done"


def state_dir(runtime, cid: str) -> Path:
    # podman passes no --root: the runtime's default root is used
    return Path("/run") / Path(runtime.path).name / cid


def start_detached(pm, name, *argv, extra=()) -> tuple[str, int]:
    r = pm.podman(*pm.run_args("-d", "--name", name, *extra), L.IMAGE_REF, *argv)
    assert r.rc == 0, r
    cid = r.out.strip().splitlines()[-1]
    info = pm.inspect(name)
    assert info["State"]["Status"] == "running", info["State"]
    return cid, info["State"]["Pid"]


def wait_exited(pm, name, timeout=30) -> dict:
    return L.wait_for(lambda: (lambda s: s if s["Status"] in ("exited", "stopped") else None)(
        pm.inspect(name)["State"]), timeout=timeout, what=f"{name} to exit")


def test_run_rm(pm, runtime):
    name = pm.name()
    r = pm.podman(*pm.run_args("--rm", "--name", name), L.IMAGE_REF, "sh", "-c",
                  "echo out-$((6*7)); echo err-line >&2; exit 5")
    assert r.rc == 5, f"the container's exit code must propagate: {r!r}"
    assert r.out == "out-42\n", f"only the container's output on its stdout: {r!r}"
    assert "err-line" in r.err, r
    ps = pm.podman("ps", "-a", "-q", "--filter", f"name=^{name}$").ok()
    assert ps.out.strip() == "", f"--rm left the container: {ps!r}"


def test_run_d_exec_stop_rm(pm, runtime):
    name = pm.name()
    cid, pid = start_detached(pm, name, "sh", "-c", RUNNING_TRAP)
    L.wait_for(lambda: Path(f"/proc/{pid}/root/tmp/ready").exists(), what="container ready")
    assert state_dir(runtime, cid).exists(), f"no runtime state at {state_dir(runtime, cid)}"

    e = pm.podman("exec", name, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
    assert e.rc == 3, e
    assert e.out == "exec-out\n" and "exec-err" in e.err, e

    e = pm.podman("exec", name, "sh", "-c", "for f in /proc/1/ns/pid /proc/self/ns/pid /proc/1/ns/mnt "
                                            "/proc/self/ns/mnt; do readlink $f; done")
    assert e.rc == 0, e
    l = e.out.split()
    assert l[0] == l[1] and l[2] == l[3], f"exec must join the container's namespaces: {e!r}"

    t0 = time.monotonic()
    s = pm.podman("stop", "-t", "10", name)
    assert s.rc == 0, s
    assert time.monotonic() - t0 < 8, "SIGTERM (trapped: exit 0) should stop it well before the timeout"
    st = wait_exited(pm, name)
    assert st["ExitCode"] == 0, st
    rm = pm.podman("rm", name)
    assert rm.rc == 0, rm
    assert not state_dir(runtime, cid).exists(), "runtime state left after podman rm"


def test_stop_escalates_to_sigkill(pm, runtime):
    name = pm.name()
    start_detached(pm, name, "sleep", "1000")  # pid 1 without a handler ignores SIGTERM
    s = pm.podman("stop", "-t", "1", name)
    assert s.rc == 0, s
    st = wait_exited(pm, name)
    assert st["ExitCode"] == 137, st


def test_kill(pm, runtime):
    name = pm.name()
    _, pid = start_detached(pm, name, "sleep", "1000")
    k = pm.podman("kill", name)
    assert k.rc == 0, k
    st = wait_exited(pm, name)
    assert st["ExitCode"] == 137, st
    assert not L.pid_alive(pid)


def test_kill_signal_handled(pm, runtime):
    name = pm.name()
    _, pid = start_detached(pm, name, "sh", "-c", "trap 'exit 12' USR1; echo ready > /tmp/ready; "
                                                  "while :; do usleep 20000; done")
    L.wait_for(lambda: Path(f"/proc/{pid}/root/tmp/ready").exists(), what="container ready")
    k = pm.podman("kill", "-s", "USR1", name)
    assert k.rc == 0, k
    st = wait_exited(pm, name)
    assert st["ExitCode"] == 12, st


def test_pause_unpause(pm, runtime):
    name = pm.name()
    _, pid = start_detached(pm, name, "sh", "-c", counter_script())
    L.wait_for(lambda: read_counter(pid) > 2, what="counter to run")
    p = pm.podman("pause", name)
    assert p.rc == 0, p
    assert pm.inspect(name)["State"]["Status"] == "paused"
    time.sleep(0.2)
    a = read_counter(pid)
    time.sleep(0.6)
    b = read_counter(pid)
    assert a == b, f"counter moved while paused: {a} -> {b}"
    u = pm.podman("unpause", name)
    assert u.rc == 0, u
    assert pm.inspect(name)["State"]["Status"] == "running"
    L.wait_for(lambda: read_counter(pid) > b + 2, what="counter to move after unpause")


def test_rm_force_running(pm, runtime):
    name = pm.name()
    cid, pid = start_detached(pm, name, "sleep", "1000")
    r = pm.podman("rm", "-f", "-t", "0", name)
    assert r.rc == 0, r
    L.wait_for(lambda: not L.pid_alive(pid), timeout=10, what="container process to die")
    assert pm.podman("ps", "-a", "-q", "--filter", f"name=^{name}$").out.strip() == ""
    assert not state_dir(runtime, cid).exists(), "runtime state left after rm -f"


def test_run_it(pm, runtime):
    name = pm.name()
    t = L.run_in_pty(pm.cmd(*pm.run_args("-it", "--rm", "--name", name), L.IMAGE_REF, "sh", "-c",
                            "tty; " + WAIT_SIZE + "; echo PROMPT; read x; echo got-$x; exit 6"),
                     env=pm.env, rows=27, cols=91, send=[("PROMPT", b"hello\r")], timeout=90)
    assert t.rc == 6, t
    assert "/dev/pts/0" in t.out, t
    assert "size=27 91" in t.out, f"the window size must reach the container: {t!r}"
    assert "got-hello" in t.out, t


def test_exec_it(pm, runtime):
    name = pm.name()
    start_detached(pm, name, "sleep", "1000")
    t = L.run_in_pty(pm.cmd("exec", "-it", name, "sh", "-c",
                            "tty; " + WAIT_SIZE + "; echo PROMPT; read x; echo got-$x; exit 8"),
                     env=pm.env, rows=30, cols=70, send=[("PROMPT", b"there\r")], timeout=90)
    assert t.rc == 8, t
    assert "/dev/pts/" in t.out, t
    assert "size=30 70" in t.out, t
    assert "got-there" in t.out, t


def test_run_memory(pm, runtime, world):
    """--memory: runc applies it (cgroup v1 memory); berth must at least run the container."""
    name = pm.name()
    r = pm.podman(*pm.run_args("--rm", "--name", name, "--memory", "64m"), L.IMAGE_REF, "sh", "-c",
                  "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo no-v1-memory; echo ran")
    assert r.rc == 0, r
    assert r.out.splitlines()[-1] == "ran", f"the container must run (and print nothing else): {r!r}"
    limit = r.out.splitlines()[0]
    print(f"\n[{runtime.name}] --memory 64m: memory.limit_in_bytes seen in the container: {limit}; "
          f"podman stderr: {r.err.strip()[:300]!r}")
    if runtime.name == "runc":
        assert limit == str(64 << 20), r


def _host_memory_limit(world, pm, cid: str) -> str | None:
    p = Path("/sys/fs/cgroup/memory") / pm.cg_parent.lstrip("/") / f"libpod-{cid}" / "memory.limit_in_bytes"
    try:
        return p.read_text().strip()
    except OSError:
        return None


def test_update(pm, runtime, world):
    name = pm.name()
    cid, pid = start_detached(pm, name, "sleep", "1000", extra=("--memory", "64m"))
    u = pm.podman("update", "--memory", "128m", name)
    if runtime.name == "berth" and not _v2_offers("memory"):
        # berth is cgroup v2 only: on this hybrid host the v2 hierarchy has no memory
        # controller, and a live update that cannot be applied is an error naming it.
        assert u.rc != 0 and "memory controller" in (u.out + u.err), u
        assert L.pid_alive(pid)
        return
    assert u.rc == 0, u
    assert L.pid_alive(pid)
    lim = _host_memory_limit(world, pm, cid)
    print(f"\n[{runtime.name}] after podman update --memory 128m: v1 memory.limit_in_bytes = {lim}")
    if runtime.name == "runc":
        assert lim == str(128 << 20)


def _v2_offers(controller) -> bool:
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(f"{root}/cgroup.controllers") as f:
                return controller in f.read().split()
        except OSError:
            continue
    return False


def _ns(pid, kind) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_pod_shares_infra_namespaces(pm, runtime):
    pod = pm.pod_name()
    c = pm.podman("pod", "create", "--name", pod, "--cgroup-parent", pm.cg_parent, "--network", "none",
                  timeout=180)
    assert c.rc == 0, c
    name = pm.name()
    r = pm.podman("run", "-d", "--pod", pod, "--name", name, L.IMAGE_REF, "sleep", "1000", timeout=180)
    assert r.rc == 0, r
    info = json.loads(pm.podman("pod", "inspect", pod).ok().out)
    if isinstance(info, list):
        info = info[0]
    infra = pm.inspect(info["InfraContainerID"])
    assert infra["State"]["Status"] == "running", infra["State"]
    ipid = infra["State"]["Pid"]
    mpid = pm.inspect(name)["State"]["Pid"]
    for kind in ("net", "ipc", "uts"):
        assert _ns(ipid, kind) == _ns(mpid, kind), f"{kind} namespace not shared with the infra container"
    assert _ns(ipid, "pid") != _ns(mpid, "pid"), "pid namespace is not shared in a default pod"
    assert _ns(mpid, "net") != _ns("self", "net")
    # the member can see the pod's hostname (uts shared)
    e = pm.podman("exec", name, "hostname")
    assert e.rc == 0 and e.out.strip() == pod, e
    s = pm.podman("pod", "stop", "-t", "1", pod, timeout=120)
    assert s.rc == 0, s
    d = pm.podman("pod", "rm", "-f", pod, timeout=120)
    assert d.rc == 0, d


def test_init_catatonit(pm, runtime):
    name = pm.name()
    r = pm.podman(*pm.run_args("--rm", "--init", "--name", name), L.IMAGE_REF, "sh", "-c",
                  "tr '\\0' ' ' < /proc/1/cmdline; echo; echo self=$$; exit 9")
    assert r.rc == 9, f"exit code through catatonit: {r!r}"
    assert r.out.startswith("/run/podman-init -- sh -c"), r
    assert "self=1" not in r.out, r


# ------------------------------------------------------------------------------------------------
# conmon's environment (SIGPIPE ignored, leaked fds, XDG_RUNTIME_DIR="", no PATH) stays out


LEAK_FD = 37


def _leaky_podman(pm, *args, timeout=120, block=False) -> L.Result:
    """podman with an extra inheritable fd and SIGHUP ignored (and SIGUSR2 blocked if `block`):
    conmon (which also ignores SIGPIPE) and so the runtime inherit all of it, the container must not."""
    rfd, wfd = os.pipe()
    os.dup2(rfd, LEAK_FD, inheritable=True)
    os.close(rfd)

    def pre():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if block:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})

    try:
        return L.run(pm.cmd(*args), env=pm.env, pass_fds=(LEAK_FD,), preexec_fn=pre, timeout=timeout)
    finally:
        os.close(LEAK_FD)
        os.close(wfd)


def _status(text: str) -> dict:
    return {k: v.strip() for k, v in (l.split(":", 1) for l in text.splitlines() if ":" in l)}


def test_conmon_signals_reset(pm, runtime):
    name = pm.name()
    r = _leaky_podman(pm, *pm.run_args("--rm", "--name", name), L.IMAGE_REF, "cat", "/proc/self/status")
    assert r.rc == 0, r
    st = _status(r.out)
    assert st["SigIgn"] == "0000000000000000", f"ignored signals reached the container: SigIgn={st['SigIgn']}"
    assert st["SigBlk"] == "0000000000000000", f"blocked signals reached the container: SigBlk={st['SigBlk']}"


def test_caller_blocked_signal_mask_reset(pm, runtime):
    """A signal blocked in podman's caller is blocked in conmon and the runtime; reset it too."""
    if runtime.name == "runc":
        pytest.xfail("runc 1.1.5 passes the caller's blocked signal mask on to the container")
    name = pm.name()
    r = _leaky_podman(pm, *pm.run_args("--rm", "--name", name), L.IMAGE_REF, "cat", "/proc/self/status", block=True)
    assert r.rc == 0, r
    assert _status(r.out)["SigBlk"] == "0000000000000000", _status(r.out)["SigBlk"]


def test_conmon_fds_closed(pm, runtime):
    name = pm.name()
    r = _leaky_podman(pm, *pm.run_args("--rm", "--name", name), L.IMAGE_REF, "ls", "/proc/self/fd")
    assert r.rc == 0, r
    assert r.out.split() == ["0", "1", "2", "3"], f"only 0 1 2 (+ ls's own dir fd 3) may be open: {r!r}"


def test_conmon_env_not_leaked(pm, runtime):
    name = pm.name()
    r = _leaky_podman(pm, *pm.run_args("--rm", "--name", name, "-e", "MARK=1"), L.IMAGE_REF, "env")
    assert r.rc == 0, r
    keys = {l.split("=", 1)[0] for l in r.out.splitlines() if "=" in l}
    assert keys <= {"PATH", "TERM", "container", "HOME", "HOSTNAME", "MARK"}, f"foreign environment: {r.out}"
    assert {"PATH", "MARK", "container"} <= keys, r.out


def test_conmon_exec_fds_and_signals(pm, runtime):
    name = pm.name()
    start_detached(pm, name, "sleep", "1000")
    r = _leaky_podman(pm, "exec", name, "ls", "/proc/self/fd")
    assert r.rc == 0, r
    assert r.out.split() == ["0", "1", "2", "3"], f"exec'd process saw extra fds: {r!r}"
    r = _leaky_podman(pm, "exec", name, "cat", "/proc/self/status")
    assert r.rc == 0, r
    st = _status(r.out)
    assert st["SigIgn"] == "0000000000000000", st["SigIgn"]
    assert st["SigBlk"] == "0000000000000000", st["SigBlk"]


# ------------------------------------------------------------------------------------------------
# errors as podman maps them


@pytest.mark.parametrize("argv0,needle", [
    ("no-such-command", "executable file not found"),
    ("/no/such/binary", "no such file or directory"),
])
def test_run_missing_executable(pm, runtime, argv0, needle):
    name = pm.name()
    r = pm.podman(*pm.run_args("--rm", "--name", name), L.IMAGE_REF, argv0)
    assert r.rc == 127, f"podman maps the runtime's message to 127 (command not found): {r!r}"
    assert needle in r.err, r
    print(f"\n[{runtime.name}] {argv0}: {r.err.strip()}")


def test_exec_missing_executable(pm, runtime):
    name = pm.name()
    start_detached(pm, name, "sleep", "1000")
    r = pm.podman("exec", name, "no-such-command")
    assert r.rc == 127, r
    assert "executable file not found" in r.err, r
    assert pm.inspect(name)["State"]["Status"] == "running"


def test_oci_log_holds_only_the_error(pm, runtime):
    """Contract §3/§9.7: on a failed create, podman json.Unmarshal()s the whole oci-log, so it must
    be exactly one JSON object (the error); otherwise podman silently falls back to conmon's copy
    of the runtime's stderr text."""
    name = pm.name()
    r = pm.podman(*pm.run_args("--name", name, "--memory", "64m"), L.IMAGE_REF, "no-such-command")
    assert r.rc == 127, r
    cid = pm.inspect(name)["Id"]
    log = pm.runroot / "overlay-containers" / cid / "userdata" / "oci-log"
    text = log.read_text()
    try:
        obj = json.loads(text)
    except ValueError as e:
        pytest.fail(f"oci-log is not a single JSON object ({e}):\n{text}")
    assert obj["level"] == "error" and "executable file not found" in obj["msg"], obj


def test_run_rm_cleanup_deletes_runtime_state(pm, runtime, world):
    """--rm: conmon's exit command (`podman container cleanup`) runs `<runtime> delete --force`
    with XDG_RUNTIME_DIR="" as its only environment; the runtime state must go."""
    name = pm.name()
    cidfile = world.root / f"{name}.cid"
    r = pm.podman(*pm.run_args("--rm", "--name", name, "--cidfile", cidfile), L.IMAGE_REF, "true")
    assert r.rc == 0, r
    cid = cidfile.read_text().strip()
    L.wait_for(lambda: not state_dir(runtime, cid).exists(), timeout=10, what="runtime state to be deleted")


def test_stop_pid_host_uses_kill_all(pm, runtime):
    """--pid host: podman stops the container with `kill --all <id> 15`."""
    name = pm.name()
    _, pid = start_detached(pm, name, "sh", "-c", "sleep 1000 & sleep 1001 & wait", extra=("--pid", "host"))
    kids = L.wait_for(lambda: (lambda k: k if len(k) >= 2 else None)(
        [p for p in L.all_pids() if (L.proc_stat(p) or ("", "", 0))[2] == pid]), what="2 sleeps")
    s = pm.podman("stop", "-t", "5", name)
    assert s.rc == 0, s
    st = wait_exited(pm, name)
    assert st["ExitCode"] in (143, 0), st
    L.wait_for(lambda: not any(L.pid_alive(p) for p in kids + [pid]), timeout=10,
               what="every container process to get the signal")


def test_preserve_fds(pm, runtime, world):
    f = world.root / f"preserved-{runtime.name}.txt"
    f.write_text("preserved-content\n")
    name = pm.name()
    cmd = ["bash", "-c", 'exec 3<"$0"; exec "$@"', str(f),
           *pm.cmd(*pm.run_args("--rm", "--name", name, "--preserve-fds", "1"), L.IMAGE_REF, "sh", "-c",
                   "ls /proc/self/fd; cat <&3")]
    r = L.run(cmd, env=pm.env)
    assert r.rc == 0, r
    assert "preserved-content" in r.out, r


def test_restart_reuses_the_id(pm, runtime):
    """`podman restart`: kill + delete --force, then create + start again under the same id."""
    name = pm.name()
    cid, pid = start_detached(pm, name, "sleep", "1000")
    r = pm.podman("restart", "-t", "1", name)
    assert r.rc == 0, r
    info = pm.inspect(name)
    assert info["State"]["Status"] == "running", info["State"]
    assert info["State"]["Pid"] != pid and L.pid_alive(info["State"]["Pid"])
    assert not L.pid_alive(pid)
    assert state_dir(runtime, cid).exists()


# podman features that reach the runtime only through config.json: (extra run args, command, expected stdout)
CONFIG_CASES = {
    "tmpfs-tmpcopyup": (["--tmpfs", "/etc"], ["sh", "-c", "grep -c ^root: /etc/passwd; mount | grep -c ' /etc type tmpfs'"],
                        "1\n1\n"),
    "read-only": (["--read-only"], ["sh", "-c", "touch /x 2>/dev/null || echo root-ro; touch /tmp/y && echo tmp-rw"],
                  "root-ro\ntmp-rw\n"),
    "device": (["--device", "/dev/zero:/dev/myzero"], ["sh", "-c", "head -c 4 /dev/myzero | od -An -tx1"],
               " 00 00 00 00\n"),
    "caps": (["--cap-drop", "all", "--cap-add", "NET_ADMIN"], ["grep", "^CapEff", "/proc/self/status"],
             "CapEff:\t0000000000001000\n"),
    # --ulimit replaces default_ulimits, so nproc must be given again (host cap, see anchors)
    "ulimit": (["--ulimit", "nofile=100:200", "--ulimit", "nproc=32768:32768"], ["sh", "-c", "ulimit -n; ulimit -Hn"], "100\n200\n"),
    "user-workdir-env": (["--user", "65534:65534", "--workdir", "/tmp", "-e", "FOO=bar"],
                         ["sh", "-c", "id -u; id -g; pwd; echo $FOO"], "65534\n65534\n/tmp\nbar\n"),
    "hostname": (["--hostname", "interop-host"], ["hostname"], "interop-host\n"),
    "no-new-privileges": (["--security-opt", "no-new-privileges"], ["grep", "^NoNewPrivs", "/proc/self/status"],
                          "NoNewPrivs:\t1\n"),
    "sysctl": (["--sysctl", "kernel.msgmax=12345"], ["cat", "/proc/sys/kernel/msgmax"], "12345\n"),
    "userns-uidmap": (["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
                      ["sh", "-c", "id -u; awk '{print $1, $2, $3}' /proc/self/uid_map; ls -n /bin/busybox | awk '{print $3}'"],
                      "0\n0 100000 65536\n0\n"),
    "anonymous-volume": (["-v", "/data"], ["sh", "-c", "echo vol > /data/f && cat /data/f && mount | grep -c ' /data '"],
                         "vol\n1\n"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_features(pm, runtime, case):
    extra, argv, want = CONFIG_CASES[case]
    name = pm.name()
    r = pm.podman(*pm.run_args("--rm", "--name", name, *extra), L.IMAGE_REF, *argv)
    assert r.rc == 0, r
    assert r.out == want, r
