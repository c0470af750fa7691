"""Rootless: an unprivileged user runs the runtime with a user namespace, as
`runc --rootless` does (state in $XDG_RUNTIME_DIR, no cgroup unless delegated)."""
import json
import os
import shutil
import subprocess

import pytest

import helpers as H

UID = 4321  # no passwd entry needed


@pytest.fixture
def rootless_bundle(env):
    b = env.make_bundle()
    for root, dirs, files in os.walk(b):
        os.chown(root, UID, UID)
    os.chown(b / "config.json", UID, UID)
    xdg = env.path("xdg")
    xdg.mkdir()
    os.chown(xdg, UID, UID)
    os.chmod(b.parent, 0o755)
    os.chmod(env.dir, 0o755)
    return b, xdg


def as_user(env, xdg, *args, cwd=None):
    def drop():
        os.setgroups([])
        os.setgid(UID)
        os.setuid(UID)
    return env.runtime(*args, root=False, cwd=cwd, preexec_fn=drop,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": str(xdg)})


@pytest.mark.skipif(not H.is_berth(), reason="runc 1.1 needs --rootless and cgroup v1 delegation here")
def test_rootless_spec_runs(env, rootless_bundle):
    bundle, xdg = rootless_bundle
    (bundle / "config.json").unlink()
    H.assert_ok(as_user(env, xdg, "spec", "--rootless", cwd=bundle))
    cfg = H.read_config(bundle)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": UID, "size": 1}]
    assert not any(n["type"] == "network" for n in cfg["linux"]["namespaces"])
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"]
    H.write_config(bundle, cfg)
    os.chown(bundle / "config.json", UID, UID)
    cid = env.new_id()
    res = H.assert_ok(as_user(env, xdg, "run", "--bundle", str(bundle), cid))
    lines = res.out.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(UID), "1"]
    assert lines[2] == "berth"
    # State lived under $XDG_RUNTIME_DIR/berth and is gone after run.
    assert (xdg / "berth").is_dir()
    assert list((xdg / "berth").iterdir()) == []


@pytest.mark.skipif(not H.is_berth(), reason="runc 1.1 needs --rootless and cgroup v1 delegation here")
def test_rootless_create_state_kill_delete(env, rootless_bundle):
    bundle, xdg = rootless_bundle
    cfg = H.read_config(bundle)
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1}]
    cfg["linux"].pop("resources", None)
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    cfg["mounts"].append({"destination": "/sys", "type": "none", "source": "/sys",
                          "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    for m in cfg["mounts"]:
        if m["destination"] == "/dev/pts":
            m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
    cfg["process"]["args"] = ["sleep", "100"]
    H.write_config(bundle, cfg)
    os.chown(bundle / "config.json", UID, UID)
    cid = env.new_id()
    H.assert_ok(as_user(env, xdg, "create", "--bundle", str(bundle), cid))
    st = json.loads(H.assert_ok(as_user(env, xdg, "state", cid)).out)
    assert st["status"] == "created"
    env.track_pid(st["pid"])
    assert os.stat(f"/proc/{st['pid']}").st_uid == UID
    H.assert_ok(as_user(env, xdg, "start", cid))
    H.assert_ok(as_user(env, xdg, "kill", cid, "KILL"))
    H.wait_for(lambda: json.loads(as_user(env, xdg, "state", cid).out)["status"] == "stopped",
               what="stopped")
    H.assert_ok(as_user(env, xdg, "delete", cid))
    assert list((xdg / "berth").iterdir()) == []
