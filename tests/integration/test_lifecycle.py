"""create/start/state/kill/delete/run/list/spec/--version (runc's create.bats, start.bats,
kill.bats, delete.bats, list.bats, spec.bats, version.bats)."""
import json
import os
import re
import shutil
import time

import pytest

import helpers as H
from helpers import assert_fail, assert_ok, sh, set_args, update_config

# A container init that reports SIGTERM and exits 0 on it (pid 1 ignores signals it
# has no handler for, so plain `sleep` would not die of SIGTERM).
TRAP_LOOP = "trap 'echo got-TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done"


def wait_output(res, needle, timeout=10):
    H.wait_for(lambda: needle in res.reread().out, timeout=timeout, what=f"{needle!r} in container output")


def start_loop(env, bundle, script=TRAP_LOOP):
    sh(bundle, script)
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    if "echo ready" in script:
        wait_output(res, "ready")
    return res


# ---- create / start / state / kill / delete -------------------------------------------


def test_full_lifecycle(env, bundle):
    sh(bundle, TRAP_LOOP)
    res = assert_ok(env.create(bundle))
    cid = res.cid
    st = env.state(cid)
    assert st and st["status"] == "created", st
    assert st["pid"] > 0 and H.pid_alive(st["pid"]), st
    assert "ready" not in res.reread().out, "the user process ran before start"

    assert_ok(env.start(cid))
    st = env.state(cid)
    assert st["status"] == "running", st
    wait_output(res, "ready")

    assert_ok(env.kill(cid, "TERM"))
    st = env.wait_status(cid, "stopped")
    assert "got-TERM" in res.reread().out

    assert_ok(env.delete(cid))
    env.assert_no_trace(cid, bundle)


def test_state_json_keys(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    rc, out, err = env.runtime("state", res.cid)
    assert rc == 0, err
    st = json.loads(out)
    for key in ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"):
        assert key in st, f"state lacks {key!r}: {st}"
    assert st["id"] == res.cid
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert os.path.realpath(st["bundle"]) == os.path.realpath(bundle)
    assert os.path.realpath(st["rootfs"]) == os.path.realpath(bundle / "rootfs")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", st["created"]), st["created"]
    assert isinstance(st["owner"], str)


def test_pid_file_no_newline_matches_state(env, bundle):
    set_args(bundle, "sleep", "1000")
    pidfile = env.path("init.pid")
    rc, out, err = env.runtime("create", "--bundle", bundle, "--pid-file", pidfile, cid := env.new_id())
    assert rc == 0, err
    data = pidfile.read_bytes()
    assert re.fullmatch(rb"[1-9][0-9]*", data), f"pid file must be decimal with no newline: {data!r}"
    assert int(data) == env.state(cid)["pid"]


def test_pid_file_relative_to_cwd(env, bundle):
    set_args(bundle, "sleep", "1000")
    cid = env.new_id()
    rc, out, err = env.runtime("create", "--bundle", bundle, "--pid-file", "rel.pid", cid, cwd=env.dir)
    assert rc == 0, err
    assert int((env.dir / "rel.pid").read_text()) == env.state(cid)["pid"]


def test_kill_default_is_sigterm(env, bundle):
    res = start_loop(env, bundle)
    assert_ok(env.kill(res.cid))
    env.wait_status(res.cid, "stopped")
    assert "got-TERM" in res.reread().out


@pytest.mark.parametrize("sig", ["9", "KILL", "SIGKILL"])
def test_kill_by_number_and_name(env, bundle, sig):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    assert env.status(res.cid) == "running"
    assert_ok(env.kill(res.cid, sig))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


@pytest.mark.parametrize("sig", ["15", "TERM", "SIGTERM"])
def test_kill_sigterm_forms(env, bundle, sig):
    res = start_loop(env, bundle)
    assert_ok(env.kill(res.cid, sig))
    env.wait_status(res.cid, "stopped")
    assert "got-TERM" in res.reread().out


def test_kill_created_container(env, bundle):
    """Killing a created (never started) container stops it; delete cleans up."""
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    assert_ok(env.kill(res.cid, "KILL"))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


@pytest.mark.parametrize("pidns", [True, False], ids=["own-pidns", "host-pidns"])
def test_kill_all(env, bundle, pidns):
    def cfg(c):
        c["process"]["args"] = ["sh", "-c", "sleep 1000 & sleep 1000 & echo ready; wait"]
        if not pidns:
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
    update_config(bundle, cfg)
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    wait_output(res, "ready")
    H.wait_for(lambda: len(env._procs_in_our_cgroups()) >= 3, what="3 processes in the container cgroup")
    assert_ok(env.runtime("kill", "--all", res.cid, "9"))
    env.wait_status(res.cid, "stopped")
    H.wait_for(lambda: not env._procs_in_our_cgroups(), timeout=10, what="all container processes gone")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


def test_delete_running_needs_force(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    r = env.delete(res.cid)
    assert r.rc != 0, f"delete of a running container must fail without --force: {r!r}"
    assert env.status(res.cid) == "running"
    assert_ok(env.delete(res.cid, force=True))
    env.assert_no_trace(res.cid, bundle)


def test_delete_force_created(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    assert_ok(env.delete(res.cid, force=True))
    env.assert_no_trace(res.cid, bundle)


def test_delete_stopped_without_force(env, bundle):
    set_args(bundle, "true")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


def test_delete_force_unknown_id_succeeds(env):
    rc, out, err = env.runtime("delete", "--force", "no-such-container-" + env.key)
    assert rc == 0, f"delete --force of an unknown id must exit 0 (containerd cleanup): {err}"


def test_delete_unknown_id_fails(env):
    assert_fail(env.runtime("delete", "no-such-" + env.key), "container does not exist")


# ---- run ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_run_returns_exit_status(env, bundle, code):
    sh(bundle, f"exit {code}")
    res = env.run(bundle)
    assert res.rc == code, res
    env.assert_no_trace(res.cid, bundle)


def test_run_returns_128_plus_signal_self(env, bundle):
    """Without a pid namespace the shell can SIGKILL itself: run exits 137."""
    def cfg(c):
        c["process"]["args"] = ["sh", "-c", "kill -9 $$"]
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
    update_config(bundle, cfg)
    res = env.run(bundle)
    assert res.rc == 128 + 9, res
    env.assert_no_trace(res.cid, bundle)


@pytest.mark.parametrize("sig,num", [("KILL", 9), ("TERM", 15)])
def test_run_returns_128_plus_signal_external(env, bundle, sig, num):
    # pid 1 of a pid namespace ignores TERM without a handler: for TERM, run sleep in
    # the host pid namespace, where the default action (terminate) applies.
    if sig == "TERM":
        update_config(bundle, lambda c: c["linux"].__setitem__(
            "namespaces", [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]))
    set_args(bundle, "sleep", "1000")
    cid = env.new_id()
    bg = H.Background(lambda: env.run(bundle, cid))
    try:
        env.wait_status(cid, "running")
        assert_ok(env.kill(cid, sig))
    finally:
        res = bg.result(H.DEFAULT_TIMEOUT + 10)
    assert res.rc == 128 + num, res
    env.assert_no_trace(cid, bundle)


def test_state_and_kill_during_foreground_run(env, bundle):
    """`state` and `kill` work (and do not block) while `run` waits for its container."""
    set_args(bundle, "sleep", "1000")
    cid = env.new_id()
    bg = H.Background(lambda: env.run(bundle, cid))
    try:
        H.wait_for(lambda: os.path.isdir(os.path.join(env.root, cid)), what="container state dir")
        st = None
        for _ in range(50):
            st = env.state(cid, timeout=5)
            if st and st["status"] == "running":
                break
            time.sleep(0.1)
        assert st and st["status"] == "running", st
        assert_ok(env.kill(cid, "KILL", timeout=5))
    finally:
        res = bg.result(H.DEFAULT_TIMEOUT + 10)
    assert res.rc == 137, res
    env.assert_no_trace(cid, bundle)


def test_run_detached(env, bundle):
    set_args(bundle, "sleep", "1000")
    t0 = time.monotonic()
    res = assert_ok(env.run_detached(bundle))
    assert time.monotonic() - t0 < 10
    st = env.state(res.cid)
    assert st["status"] == "running"
    assert int(env.path(f"{res.cid}.pid").read_text()) == st["pid"]
    assert_ok(env.kill(res.cid, "KILL"))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


def test_run_detached_exits_by_itself(env, bundle):
    sh(bundle, "echo bye")
    res = assert_ok(env.run_detached(bundle))
    env.wait_status(res.cid, "stopped")
    assert "bye" in res.reread().out
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


def test_run_keep(env, bundle):
    sh(bundle, "exit 3")
    cid = env.new_id()
    res = env.runtime("run", "--keep", "--bundle", bundle, cid)
    assert res.rc == 3, res
    st = env.state(cid)
    assert st and st["status"] == "stopped", st
    assert_ok(env.delete(cid))
    env.assert_no_trace(cid, bundle)


def test_run_removes_container(env, bundle):
    set_args(bundle, "true")
    res = env.run(bundle)
    assert res.rc == 0, res
    env.assert_no_trace(res.cid, bundle)


# ---- list ----------------------------------------------------------------------------


def test_list(env, make_bundle):
    b1, b2 = make_bundle(), make_bundle()
    set_args(b1, "sleep", "1000")
    set_args(b2, "sleep", "1000")
    c1 = assert_ok(env.create(b1)).cid
    c2 = assert_ok(env.create(b2)).cid
    assert_ok(env.start(c2))

    rc, out, err = env.runtime("list")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], lines[0]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert set(rows) == {c1, c2}
    assert rows[c1][2] == "created" and rows[c2][2] == "running"
    assert rows[c1][1] == str(env.state(c1)["pid"])
    assert os.path.realpath(rows[c1][3]) == os.path.realpath(b1)
    assert rows[c1][-1] == "root", lines  # runc names the state dir's owner

    rc, out, err = env.runtime("list", "--format", "json")
    assert rc == 0, err
    items = {i["id"]: i for i in json.loads(out)}
    assert set(items) == {c1, c2}
    assert items[c1]["status"] == "created" and items[c2]["status"] == "running"
    for i in items.values():
        for key in ("id", "pid", "status", "bundle", "created", "owner"):
            assert key in i, f"list json lacks {key}: {i}"
        assert i["owner"] == "root", i

    rc, out, err = env.runtime("list", "-q")
    assert rc == 0, err
    assert sorted(out.split()) == sorted([c1, c2])


def test_list_empty(env):
    rc, out, err = env.runtime("list", "-q")
    assert rc == 0 and out.strip() == "", (out, err)
    rc, out, err = env.runtime("list", "--format", "json")
    assert rc == 0, err
    assert json.loads(out) in ([], None)


# ---- error texts clients match --------------------------------------------------------


def test_state_unknown(env):
    assert_fail(env.runtime("state", "nope-" + env.key), "container does not exist")


def test_kill_unknown(env):
    assert_fail(env.runtime("kill", "nope-" + env.key, "9"), "container does not exist")


def test_kill_stopped_not_running(env, bundle):
    set_args(bundle, "true")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped")
    assert_fail(env.kill(res.cid, "9"), "container not running")


def test_kill_all_stopped_succeeds(env, bundle):
    """`kill --all` on a stopped container exits 0, as runc's does (without --all it is
    "container not running", above)."""
    set_args(bundle, "true")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.runtime("kill", "--all", res.cid, "9"))
    assert_ok(env.runtime("kill", "--all", res.cid, "TERM"))
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


def test_kill_all_stopped_kills_leftovers(env, bundle):
    """Without a pid namespace a process can outlive the init in the container's cgroup:
    `kill --all` of the stopped container still reaches it."""
    def cfg(c):
        c["process"]["args"] = ["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo started"]
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
    update_config(bundle, cfg)
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped")
    H.wait_for(lambda: env._procs_in_our_cgroups(), what="the sleep left in the cgroup")
    assert_ok(env.runtime("kill", "--all", res.cid, "KILL"))
    H.wait_for(lambda: not env._procs_in_our_cgroups(), timeout=10, what="the leftover killed")
    assert_ok(env.delete(res.cid))
    env.assert_no_trace(res.cid, bundle)


def test_start_stopped(env, bundle):
    set_args(bundle, "true")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped")
    assert_fail(env.start(res.cid), "cannot start a container that has stopped")


def test_start_running_fails(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    r = env.start(res.cid)
    assert r.rc != 0, r
    assert env.status(res.cid) == "running"


def test_start_unknown(env):
    assert_fail(env.runtime("start", "nope-" + env.key), "container does not exist")


# ---- spec / version -------------------------------------------------------------------


def test_spec_then_run(env):
    d = env.path("specb")
    d.mkdir()
    rc, out, err = env.runtime("spec", cwd=d)
    assert rc == 0, err
    cfg = H.read_config(d)
    for key in ("ociVersion", "process", "root", "mounts", "linux"):
        assert key in cfg, f"spec output lacks {key}"
    assert cfg["root"]["path"] == "rootfs"
    assert cfg["process"]["args"] == ["sh"]
    # a second spec refuses to overwrite
    rc2, _, err2 = env.runtime("spec", cwd=d)
    assert rc2 != 0, "spec must not overwrite an existing config.json"
    # make it runnable for tests, and run it
    shutil.copytree(env.s.rootfs_cache, d / "rootfs", symlinks=True)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    cfg.setdefault("linux", {})["cgroupsPath"] = f"{env.cgroup_parent}/specb"
    H.write_config(d, cfg)
    res = env.run(d)
    assert res.rc == 0 and "spec-ok" in res.out, res
    env.assert_no_trace(res.cid, d)


def test_spec_bundle_flag(env):
    d = env.path("specb2")
    d.mkdir()
    rc, out, err = env.runtime("spec", "--bundle", d)
    assert rc == 0, err
    assert (d / "config.json").is_file()
    assert not (env.s.cwd / "config.json").exists()


def test_version(env):
    rc, out, err = env.runtime("--version", root=False)
    assert rc == 0, err
    assert re.search(r"version \S+", out), out
    assert re.search(r"^spec: \S+", out, re.M), out


@pytest.mark.berth_only
def test_version_berth(env):
    rc, out, err = env.runtime("--version", root=False)
    assert out.splitlines()[0].startswith("berth version "), out
