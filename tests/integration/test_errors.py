"""Bad configs fail at create with a clear error and leave nothing behind; mount
destinations cannot escape the rootfs; duplicate ids; --log/--log-format json."""
import json
import os
import re
from pathlib import Path

import pytest

import helpers as H
from helpers import assert_ok, set_args, sh, update_config


def _del(path):
    def fn(c):
        node = c
        for k in path[:-1]:
            node = node[k]
        node.pop(path[-1], None)
    return fn


def _set(path, value):
    def fn(c):
        node = c
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return fn


def _add_ns(ns):
    return lambda c: c["linux"]["namespaces"].append(ns)


def _userns(uid_maps, gid_maps):
    def fn(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = uid_maps
        c["linux"]["gidMappings"] = gid_maps
    return fn


RUNC_IGNORES = "runc 1.1 accepts this config (it ignores or tolerates the field)"

# name -> (mutation, text berth's error must contain, runc skip reason or None)
CASES = {
    "invalid-json": ("RAW:{ \"ociVersion\": \"1.2.0\", \"process\": ", "config.json", None),
    "empty-file": ("RAW:", "config.json", None),
    "args-wrong-type": (_set(["process", "args"], "sh"), "process.args", None),
    "args-element-wrong-type": (_set(["process", "args"], ["sh", 5]), "process.args[1]", None),
    "readonly-wrong-type": (_set(["root", "readonly"], "yes"), "root.readonly", None),
    "uid-wrong-type": (_set(["process", "user", "uid"], "0"), "process.user.uid", None),
    "uid-negative": (_set(["process", "user", "uid"], -1), "process.user.uid", None),
    "namespaces-wrong-type": (_set(["linux", "namespaces"], {"type": "pid"}), "linux.namespaces", None),
    "unknown-namespace": (_add_ns({"type": "bogus"}), "bogus", None),
    "duplicate-namespace": (_add_ns({"type": "pid"}), "pid", None),
    "unknown-capability": (_set(["process", "capabilities", "bounding"], ["CAP_KILL", "CAP_BOGUS"]),
                           "CAP_BOGUS", RUNC_IGNORES),
    "root-path-missing": (_set(["root", "path"], "does-not-exist"), "does-not-exist", None),
    "no-root": (_del(["root"]), "root", None),
    "missing-args": (_del(["process", "args"]), "process.args", None),
    "empty-args": (_set(["process", "args"], []), "process.args", None),
    "no-process": (_del(["process"]), "process", None),
    "relative-cwd": (_set(["process", "cwd"], "tmp"), "process.cwd", None),
    "unknown-rlimit": (_set(["process", "rlimits"], [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
                       "RLIMIT_BOGUS", None),
    "unknown-seccomp-syscall": (_set(["linux", "seccomp"], {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["bogus_syscall_name"], "action": "SCMP_ACT_ERRNO"}]}),
        "bogus_syscall_name", RUNC_IGNORES),
    "userns-without-mappings": (_userns([], []), "uidMappings", None),
    "uid-mapping-size-0": (_userns([{"containerID": 0, "hostID": 100000, "size": 0}],
                                   [{"containerID": 0, "hostID": 100000, "size": 65536}]),
                           "uidMappings", None),
    "uid-mapping-overlap": (_userns([{"containerID": 0, "hostID": 100000, "size": 100},
                                     {"containerID": 50, "hostID": 200000, "size": 100}],
                                    [{"containerID": 0, "hostID": 100000, "size": 65536}]),
                            "uidMappings", None),
    "mappings-without-userns": (lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 100000, "size": 1}],
        gidMappings=[{"containerID": 0, "hostID": 100000, "size": 1}]), "uidMappings", RUNC_IGNORES),
    "unknown-mount-propagation": (_set(["linux", "rootfsPropagation"], "sideways"), "rootfsPropagation", None),
    "mount-missing-destination": (lambda c: c["mounts"].append({"type": "tmpfs", "source": "tmpfs"}),
                                  "destination", None),
    "device-bad-type": (_set(["linux", "devices"], [{"path": "/dev/x", "type": "q", "major": 1, "minor": 3}]),
                        "linux.devices[0].type", None),
}


def apply_case(bundle, name):
    mut = CASES[name][0]
    if isinstance(mut, str) and mut.startswith("RAW:"):
        (bundle / "config.json").write_text(mut[4:])
    else:
        update_config(bundle, mut)


def _params(names):
    out = []
    for n in names:
        reason = CASES[n][2]
        marks = [pytest.mark.skip_runc(reason)] if reason else []
        out.append(pytest.param(n, id=n, marks=marks))
    return out


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_config_fails_cleanly(env, bundle, case):
    set_args(bundle, "true")
    apply_case(bundle, case)
    res = env.create(bundle)
    assert res.rc != 0, f"{case}: create must fail: {res!r}"
    assert res.err.strip(), f"{case}: no error message on stderr"
    env.assert_no_trace(res.cid, bundle if case not in ("invalid-json", "empty-file") else None)


@pytest.mark.berth_only
@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_error_names_field(env, bundle, case):
    set_args(bundle, "true")
    apply_case(bundle, case)
    res = env.create(bundle)
    assert res.rc != 0
    assert CASES[case][1] in res.err, f"{case}: error should name {CASES[case][1]!r}: {res.err!r}"


@pytest.mark.parametrize("case", ["invalid-json", "missing-args", "unknown-namespace"])
def test_bad_config_fails_run_too(env, bundle, case):
    set_args(bundle, "true")
    apply_case(bundle, case)
    res = env.run(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid)


def test_missing_config_json(env, bundle):
    (bundle / "config.json").unlink()
    res = env.create(bundle)
    assert res.rc != 0 and "config.json" in res.err, res
    env.assert_no_trace(res.cid)


def test_missing_bundle(env):
    res = env.create(env.path("no-bundle"))
    assert res.rc != 0, res
    env.assert_no_trace(res.cid)


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", "..", "with space"])
def test_invalid_container_id(env, bundle, bad_id):
    set_args(bundle, "true")
    res = env.runtime("create", "--bundle", bundle, bad_id)
    env.ids.remove(bad_id)  # teardown must not try to delete it
    assert res.rc != 0, res
    assert not os.path.exists(os.path.join(os.path.dirname(env.root), "escape"))
    assert os.listdir(env.root) == []


# ---- mount destinations cannot escape the rootfs -----------------------------------------------


def _escape_check(env, bundle, dest, name):
    """The container sees a tmpfs at /<name>; nothing named <name> appears outside the rootfs."""
    rootfs = (bundle / "rootfs").resolve()
    update_config(bundle, lambda c: c["mounts"].append(
        {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}))
    sh(bundle, f"grep -c ' /{name} tmpfs ' /proc/mounts")
    res = env.run(bundle)
    outside = [p / name for p in rootfs.parents] + [Path("/tmp") / name]
    leaked = [str(p) for p in outside if os.path.lexists(p)]
    assert not leaked, f"mount destination {dest!r} created {leaked} outside the rootfs"
    assert res.rc == 0, res
    assert res.out.strip() == "1", f"{dest!r} should be mounted at /{name} inside: {res!r}"
    assert (rootfs / name).is_dir(), "the mount point should have been created inside the rootfs"
    env.assert_no_trace(res.cid, bundle)


def test_mount_destination_dotdot_stays_inside(env, bundle):
    name = f"escape-{env.key}"
    _escape_check(env, bundle, "/../../../../../../../../" + name, name)


def test_mount_destination_dotdot_middle(env, bundle):
    name = f"escape-{env.key}"
    _escape_check(env, bundle, f"/tmp/../../../../../../../{name}", name)


def test_mount_destination_absolute_symlink_stays_inside(env, bundle):
    name = f"escape-{env.key}"
    os.symlink("/", bundle / "rootfs" / "evil")
    _escape_check(env, bundle, f"/evil/{name}", name)


def test_mount_destination_relative_symlink_stays_inside(env, bundle):
    name = f"escape-{env.key}"
    os.symlink("../../../../../../../../../..", bundle / "rootfs" / "evil")
    _escape_check(env, bundle, f"/evil/{name}", name)


def test_mount_destination_symlink_to_host_tmp(env, bundle):
    """rootfs/evil -> /tmp: a bind mounted at /evil/x lands in rootfs/tmp/x, not host /tmp/x."""
    name = f"escape-{env.key}"
    os.symlink("/tmp", bundle / "rootfs" / "evil")
    src = env.path("src")
    src.mkdir()
    (src / "f").write_text("in\n")
    update_config(bundle, lambda c: c["mounts"].append(
        {"destination": f"/evil/{name}", "type": "bind", "source": str(src), "options": ["rbind", "ro"]}))
    sh(bundle, f"cat /tmp/{name}/f")
    res = env.run(bundle)
    assert not os.path.lexists(f"/tmp/{name}"), "bind mount destination escaped to the host's /tmp"
    assert res.rc == 0 and res.out == "in\n", res
    env.assert_no_trace(res.cid, bundle)


# ---- duplicate id -------------------------------------------------------------------------------


def test_duplicate_container_id(env, make_bundle):
    b1, b2 = make_bundle(), make_bundle()
    set_args(b1, "sleep", "1000")
    set_args(b2, "sleep", "1000")
    res = assert_ok(env.create(b1))
    st = env.state(res.cid)
    r2 = env.runtime("create", "--bundle", b2, res.cid)
    assert r2.rc != 0, r2
    assert res.cid in r2.err or "exist" in r2.err, r2
    st2 = env.state(res.cid)
    assert st2["status"] == "created" and st2["pid"] == st["pid"], (st, st2)
    assert os.path.realpath(st2["bundle"]) == os.path.realpath(b1)
    assert H.pid_alive(st["pid"])
    cg = H.read_config(b2)["linux"]["cgroupsPath"]
    assert not [mp for mp in H.cgroup_mounts() if os.path.isdir(mp + cg)], "second create left a cgroup"


# ---- --log / --log-format json --------------------------------------------------------------------


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _json_log_lines(path):
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    objs = []
    for ln in lines:
        try:
            objs.append(json.loads(ln))
        except ValueError:
            raise AssertionError(f"log line is not JSON: {ln!r}") from None
    return objs


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_log_format_json(env, bundle, form):
    set_args(bundle, "true")
    apply_case(bundle, "unknown-namespace")
    log = env.path("log.json")
    log.write_text('{"level":"info","msg":"pre-existing line","time":"2026-01-01T00:00:00Z"}\n')
    cid = env.new_id()
    glob = ["--log", str(log), "--log-format", "json"] if form == "separate" else \
        [f"--log={log}", "--log-format=json"]
    res = env.runtime("create", "--bundle", bundle, cid, global_args=glob)
    assert res.rc != 0, res
    objs = _json_log_lines(log)
    assert objs[0]["msg"] == "pre-existing line", "the log file must be appended to, not truncated"
    errors = [o for o in objs[1:] if o.get("level") == "error"]
    assert errors, f"no error line in the json log: {objs}"
    for o in objs[1:]:
        assert list(o)[:3] == ["level", "msg", "time"] or {"level", "msg", "time"} <= set(o), o
        assert RFC3339.match(o["time"]), o
    last = errors[-1]["msg"]
    assert last.strip(), errors
    assert "bogus" in last, f"the error should say what is wrong: {last!r}"
    assert "bogus" in res.err, f"the message must also be printed on stderr: {res.err!r}"
    env.assert_no_trace(cid, bundle)


@pytest.mark.berth_only
def test_log_json_single_error_object(env, bundle):
    """podman reads the whole oci-log as one JSON object: on failure only the error line."""
    set_args(bundle, "true")
    apply_case(bundle, "unknown-namespace")
    log = env.path("oci-log")
    res = env.runtime("create", "--bundle", bundle, env.new_id(), global_args=["--log-format=json", "--log", log])
    assert res.rc != 0
    objs = _json_log_lines(log)
    assert len(objs) == 1 and objs[0]["level"] == "error", objs
    assert list(objs[0]) == ["level", "msg", "time"], objs[0]


def test_log_json_on_success_is_valid(env, bundle):
    set_args(bundle, "sleep", "1000")
    log = env.path("log.json")
    res = assert_ok(env.create(bundle, None, global_args=["--log", log, "--log-format", "json"]))
    for call in (["start", res.cid], ["kill", res.cid, "9"]):
        assert_ok(env.runtime(*call, global_args=["--log", log, "--log-format", "json"]))
    env.wait_status(res.cid, "stopped")
    assert_ok(env.runtime("delete", res.cid, global_args=["--log", log, "--log-format", "json"]))
    if log.exists():
        for o in _json_log_lines(log):
            assert {"level", "msg", "time"} <= set(o), o
            assert o["level"] != "error", o


def test_log_text_format_to_file(env, bundle):
    set_args(bundle, "true")
    apply_case(bundle, "unknown-namespace")
    log = env.path("log.txt")
    res = env.runtime("create", "--bundle", bundle, env.new_id(), global_args=["--log", log])
    assert res.rc != 0
    text = log.read_text()
    assert "level=error" in text and "bogus" in text, text


# --------------------------------------------------------------------------------------
# failures of the init after it reported "created"

PR_CAPBSET_DROP = 24
CAP_SYS_RESOURCE = 24


def _lack_cap_sys_resource():
    """preexec: the runtime runs without CAP_SYS_RESOURCE in its bounding set (as root on
    some hosts does), so the container's init cannot be given it."""
    if H.libc.prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0:
        raise OSError("prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE)")


@pytest.mark.parametrize("wait", ["in-dmz", "in-runtime"])
def test_capability_failure_fails_create(env, bundle, wait):
    """A capability the runtime cannot grant fails `create` with the error, as in runc
    and crun, and nothing is left: no state, cgroup, process or pid file. The init waits
    for start in berth-dmz (it reported "created" before dropping privileges) or, with a
    startContainer hook, in berth itself."""
    def cfg(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SYS_RESOURCE")
        if wait == "in-runtime":
            c["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
    update_config(bundle, cfg)
    set_args(bundle, "sleep", "1000")
    cid = env.new_id()
    res = env.create(bundle, cid, preexec_fn=_lack_cap_sys_resource)
    H.assert_fail(res, "operation not permitted")
    if H.is_berth():
        assert "CAP_SYS_RESOURCE" in res.err, res
    assert not env.path(f"{cid}.pid").exists(), "pid file written for a failed create"
    env.assert_no_trace(cid, bundle)
