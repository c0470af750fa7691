"""Global and command flags that runc 1.2 and crun have beyond runc 1.1, acted on as
they act on them: --pidfd-socket (create, run, exec), --cgroup-manager=disabled and
--rootless true|false|auto. runc 1.1 has none of them: berth-only."""
import contextlib
import ctypes
import json
import os
import re
from pathlib import Path

import pytest

import helpers as H
from helpers import assert_fail, assert_ok, set_args, update_config

pytestmark = pytest.mark.berth_only

SYS_pidfd_send_signal = 424
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096


def pidfd_pid(fd: int) -> int:
    """The pid a pidfd refers to (its fdinfo)."""
    m = re.search(r"^Pid:\s*(-?\d+)", Path(f"/proc/self/fdinfo/{fd}").read_text(), re.M)
    assert m, Path(f"/proc/self/fdinfo/{fd}").read_text()
    return int(m.group(1))


def pidfd_kill(fd: int, sig=9) -> None:
    if H.libc.syscall(SYS_pidfd_send_signal, fd, sig, None, 0) != 0:
        raise OSError(ctypes.get_errno(), "pidfd_send_signal")


@pytest.fixture
def pidfd_listener(env):
    listeners = []

    def make():
        lst = H.UnixListener(env.sock_path("pidfd"))
        listeners.append(lst)
        return lst
    yield make
    for lst in listeners:
        lst.close()


# --------------------------------------------------------------------------------------
# --pidfd-socket


@pytest.mark.parametrize("how", ["create", "run-d"])
def test_pidfd_socket_gets_the_init(env, bundle, pidfd_listener, how):
    set_args(bundle, "sleep", "1000")
    lst = pidfd_listener()
    if how == "create":
        res = assert_ok(env.create(bundle, None, "--pidfd-socket", lst.path))
    else:
        res = assert_ok(env.run_detached(bundle, None, "--pidfd-socket", lst.path))
    payload, fds = lst.wait()
    assert payload.rstrip(b"\0") == b"standard", payload
    assert len(fds) == 1, fds
    init = env.state(res.cid)["pid"]
    assert pidfd_pid(fds[0]) == init
    pidfd_kill(fds[0])  # the pidfd is a handle on the container's init
    env.wait_status(res.cid, "stopped")


def test_pidfd_socket_gets_the_exec_process(env, bundle, pidfd_listener):
    set_args(bundle, "sleep", "1000")
    cid = assert_ok(env.run_detached(bundle)).cid
    lst = pidfd_listener()
    pidfile = env.path("exec.pid")
    assert_ok(env.runtime("exec", "-d", "--pid-file", str(pidfile), "--pidfd-socket", lst.path, cid, "sleep", "100"))
    payload, fds = lst.wait()
    assert payload.rstrip(b"\0") == b"setns", payload
    assert pidfd_pid(fds[0]) == int(pidfile.read_text())
    pidfd_kill(fds[0])
    H.wait_for(lambda: not H.pid_alive(int(pidfile.read_text())), what="the exec'd process killed")


def test_pidfd_socket_nobody_listens(env, bundle):
    set_args(bundle, "true")
    res = env.create(bundle, None, "--pidfd-socket", env.sock_path("nobody-listens"))
    assert_fail(res, "connect to pidfd socket")
    env.assert_no_trace(res.cid, bundle)


# --------------------------------------------------------------------------------------
# --cgroup-manager=disabled


def own_cgroup_v2() -> str:
    return Path("/proc/self/cgroup").read_text().split("0::", 1)[1].splitlines()[0]


def test_cgroup_manager_disabled_creates_no_cgroup(env, bundle):
    """crun: no cgroup is created or joined; the container stays in the caller's cgroup,
    and its limits are knowingly not applied (a warning, not a failure)."""
    update_config(bundle, lambda c: c["linux"]["resources"].update({"pids": {"limit": 100}}))
    update_config(bundle, lambda c: c["linux"]["namespaces"].remove({"type": "cgroup"}))
    H.sh(bundle, "grep '^0::' /proc/self/cgroup")
    res = assert_ok(env.run(bundle, global_args=["--cgroup-manager=disabled"]))
    assert res.out.strip() == f"0::{own_cgroup_v2()}", res
    assert "linux.resources.pids.limit: not applied" in res.err and "--cgroup-manager=disabled" in res.err, res
    cg = H.read_config(bundle)["linux"]["cgroupsPath"]
    assert not any(os.path.isdir(mp + cg) for mp in H.cgroup_mounts()), "a cgroup was created"
    env.assert_no_trace(res.cid, bundle)


def test_cgroup_manager_disabled_lifecycle(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle, None, global_args=["--cgroup-manager", "disabled"]))
    assert_ok(env.start(res.cid))
    assert env.status(res.cid) == "running"
    assert json.loads(env.runtime("state", res.cid).out).get("pid")
    assert_ok(env.runtime("kill", "--all", res.cid, "KILL"))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


# --------------------------------------------------------------------------------------
# --rootless


def readonly_cgroup2():
    """preexec: a mount namespace of its own where the cgroup v2 hierarchy is read-only,
    so creating the container's cgroup fails with EROFS (a permission error, as for a
    user without a delegated cgroup)."""
    root = next(mp for mp in H.cgroup_mounts()
                if next((m[2] for m in H.mountinfo() if m[0] == mp), None) == "cgroup2")

    def preexec():
        if H.libc.unshare(H.CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        if H.libc.mount(None, root.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) != 0:
            raise OSError(ctypes.get_errno(), f"remount {root} read-only")
    return preexec


@pytest.mark.parametrize("mode,works", [("true", True), ("false", False), ("auto", False), (None, False)])
def test_rootless_flag_decides_on_cgroup_permission_errors(env, bundle, mode, works):
    """runc's --rootless: true runs without a cgroup when it may not create one; false,
    and auto for root outside a user namespace, fail with the error."""
    set_args(bundle, "true")
    global_args = [f"--rootless={mode}"] if mode else []
    res = env.run(bundle, global_args=global_args, preexec_fn=readonly_cgroup2())
    if works:
        assert res.rc == 0, res
        assert "running without a cgroup of its own" in res.err, res
    else:
        assert_fail(res, "read-only file system")
    env.assert_no_trace(res.cid, bundle)


def test_rootless_true_still_refuses_unenforced_limits(env, bundle):
    """Without a cgroup no limit is enforced: that needs the opt-in too (runc errors:
    "cannot set ... limit: container could not join or create cgroup")."""
    update_config(bundle, lambda c: c["linux"]["resources"].update({"pids": {"limit": 100}}))
    set_args(bundle, "true")
    res = env.run(bundle, global_args=["--rootless=true"], preexec_fn=readonly_cgroup2())
    assert_fail(res, "pids (linux.resources.pids.limit): the container has no cgroup")
    env.assert_no_trace(res.cid, bundle)
    res = env.run(bundle, global_args=["--rootless=true", "--allow-unenforced-limits"], preexec_fn=readonly_cgroup2())
    assert res.rc == 0, res
    env.assert_no_trace(res.cid, bundle)
