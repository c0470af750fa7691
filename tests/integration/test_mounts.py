"""Mounts, /dev, masked and read-only paths, the root file system."""
import os
import shutil

import pytest

import helpers as H
from helpers import assert_ok, set_args, sh, update_config


def add_mount(bundle, dest, typ, source, options=None):
    m = {"destination": dest, "type": typ, "source": str(source)}
    if options is not None:
        m["options"] = options
    update_config(bundle, lambda c: c["mounts"].append(m))


def add_caps(bundle, *caps):
    def cfg(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k] = sorted(set(c["process"]["capabilities"][k]) | set(caps))
    update_config(bundle, cfg)


def proc_mounts_line(out: str, mnt: str):
    for ln in out.splitlines():
        f = ln.split()
        if len(f) >= 4 and f[1] == mnt:
            return f
    return None


@pytest.fixture
def data_dir(env):
    d = env.path("data")
    d.mkdir()
    (d / "hello").write_text("hello from the host\n")
    return d


# ---- bind mounts ------------------------------------------------------------------------


def test_bind_ro(env, bundle, data_dir):
    add_mount(bundle, "/mnt/data", "bind", data_dir, ["bind", "ro"])
    sh(bundle, "cat /mnt/data/hello; touch /mnt/data/new 2>&1; echo rc=$?; grep ' /mnt/data ' /proc/mounts")
    out = env.run_ok(bundle)
    assert "hello from the host" in out
    assert "Read-only file system" in out and "rc=1" in out, out
    assert not (data_dir / "new").exists()
    f = proc_mounts_line(out, "/mnt/data")
    assert f and "ro" in f[3].split(","), out


@pytest.mark.parametrize("opts", [["bind"], ["rbind", "rw"]], ids=["bind", "rbind-rw"])
def test_bind_rw(env, bundle, data_dir, opts):
    add_mount(bundle, "/mnt/data", "bind", data_dir, opts)
    sh(bundle, "cat /mnt/data/hello && echo written > /mnt/data/new && echo ok")
    out = env.run_ok(bundle)
    assert "hello from the host" in out and "ok" in out, out
    assert (data_dir / "new").read_text() == "written\n"


@pytest.mark.skip_runc("runc 1.1 needs a bind/rbind option: type \"bind\" alone fails with ENODEV")
def test_bind_type_without_options(env, bundle, data_dir):
    add_mount(bundle, "/mnt/data", "bind", data_dir)
    sh(bundle, "cat /mnt/data/hello")
    assert "hello from the host" in env.run_ok(bundle)


def test_bind_file(env, bundle, data_dir):
    add_mount(bundle, "/etc/motd-from-host", "bind", data_dir / "hello", ["bind", "ro"])
    sh(bundle, "cat /etc/motd-from-host")
    assert env.run_ok(bundle) == "hello from the host\n"


@pytest.fixture
def src_with_submount(env, data_dir):
    sub = data_dir / "sub"
    sub.mkdir()
    H.host(["mount", "-t", "tmpfs", "-o", "size=1m", "subtmp", str(sub)])
    env.add_cleanup(lambda: H.host(["umount", str(sub)], check=False))
    (sub / "inner").write_text("inner\n")
    return data_dir


@pytest.mark.parametrize("opt,visible", [("rbind", True), ("bind", False)])
def test_rbind_includes_submounts(env, bundle, src_with_submount, opt, visible):
    add_mount(bundle, "/mnt/src", "bind", src_with_submount, [opt])
    sh(bundle, "cat /mnt/src/sub/inner 2>/dev/null || echo absent")
    out = env.run_ok(bundle).strip()
    assert out == ("inner" if visible else "absent"), out


def test_bind_source_relative_to_bundle(env, bundle):
    (bundle / "reldata").mkdir()
    (bundle / "reldata" / "f").write_text("relative\n")
    add_mount(bundle, "/mnt/rel", "bind", "reldata", ["bind", "ro"])
    sh(bundle, "cat /mnt/rel/f")
    assert env.run_ok(bundle) == "relative\n"


def test_bind_missing_source_fails(env, bundle):
    add_mount(bundle, "/mnt/x", "bind", env.path("no-such-dir"), ["bind"])
    set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)


# ---- tmpfs -----------------------------------------------------------------------------


def test_tmpfs_options(env, bundle):
    add_mount(bundle, "/mnt/t", "tmpfs", "tmpfs", ["nosuid", "nodev", "noexec", "mode=700", "size=1m"])
    sh(bundle, "stat -c %a /mnt/t; grep ' /mnt/t ' /proc/mounts; echo x > /mnt/t/f && cat /mnt/t/f")
    out = env.run_ok(bundle)
    lines = out.splitlines()
    assert lines[0] == "700", out
    f = proc_mounts_line(out, "/mnt/t")
    assert f and f[2] == "tmpfs", out
    opts = f[3].split(",")
    for o in ("nosuid", "nodev", "noexec", "size=1024k", "rw"):
        assert o in opts, f"{o} missing from {opts}"
    assert lines[-1] == "x"


def test_tmpfs_ro(env, bundle):
    add_mount(bundle, "/mnt/t", "tmpfs", "tmpfs", ["ro", "size=1m"])
    sh(bundle, "touch /mnt/t/f 2>&1; echo rc=$?")
    out = env.run_ok(bundle)
    assert "Read-only file system" in out and "rc=1" in out, out


def test_tmpcopyup(env, bundle):
    add_mount(bundle, "/etc", "tmpfs", "tmpfs", ["tmpcopyup", "mode=755"])
    sh(bundle, "grep -c root /etc/passwd; echo new > /etc/newfile && cat /etc/newfile; "
               "grep ' /etc ' /proc/mounts | cut -d' ' -f3")
    out = env.run_ok(bundle).split()
    assert out == ["1", "new", "tmpfs"], out
    assert not (bundle / "rootfs" / "etc" / "newfile").exists()


# ---- propagation -----------------------------------------------------------------------


@pytest.fixture
def shared_src(env):
    """A shared mount in the test's (private) namespace."""
    d = env.path("shared")
    d.mkdir()
    H.host(["mount", "--bind", str(d), str(d)])
    H.host(["mount", "--make-shared", str(d)])

    def cleanup():
        for m in reversed(H.mountinfo()):
            if m[0].startswith(str(d) + "/"):
                H.host(["umount", "-l", m[0]], check=False)
        H.host(["umount", "-l", str(d)], check=False)
    env.add_cleanup(cleanup)
    (d / "late").mkdir()
    (d / "inner").mkdir()
    return d


def test_propagation_host_to_container_rslave(env, bundle, shared_src):
    """With the default (rslave) root propagation, a host mount under a shared bind source
    appears inside the running container."""
    add_mount(bundle, "/mnt/p", "bind", shared_src, ["rbind", "rslave"])
    sh(bundle, "echo ready; i=0; while [ ! -e /mnt/p/late/marker ] && [ $i -lt 200 ]; do sleep 0.05; "
               "i=$((i+1)); done; cat /mnt/p/late/marker 2>&1")
    res = assert_ok(env.run_detached(bundle))
    H.wait_for(lambda: "ready" in res.reread().out, what="ready")
    H.host(["mount", "-t", "tmpfs", "-o", "size=1m", "late", str(shared_src / "late")])
    (shared_src / "late" / "marker").write_text("propagated\n")
    env.wait_status(res.cid, "stopped", timeout=20)
    assert "propagated" in res.reread().out, res.out


def test_propagation_container_to_host_rshared(env, bundle, shared_src):
    add_caps(bundle, "CAP_SYS_ADMIN")
    update_config(bundle, {"linux": {"rootfsPropagation": "rshared"}})
    add_mount(bundle, "/mnt/p", "bind", shared_src, ["rbind", "rshared"])
    sh(bundle, "mount -t tmpfs -o size=1m fromctr /mnt/p/inner && echo mounted; sleep 1000")
    res = assert_ok(env.run_detached(bundle))
    H.wait_for(lambda: "mounted" in res.reread().out, what="container mount", timeout=10)
    H.wait_for(lambda: H.is_mountpoint(shared_src / "inner"), timeout=5,
               what="container mount to propagate to the host")


def test_propagation_default_does_not_leak_to_host(env, bundle, shared_src):
    add_caps(bundle, "CAP_SYS_ADMIN")
    add_mount(bundle, "/mnt/p", "bind", shared_src, ["rbind"])
    sh(bundle, "mount -t tmpfs -o size=1m fromctr /mnt/p/inner && echo mounted; sleep 1000")
    res = assert_ok(env.run_detached(bundle))
    H.wait_for(lambda: "mounted" in res.reread().out, what="container mount", timeout=10)
    assert not H.is_mountpoint(shared_src / "inner"), "container mount leaked into the host namespace"


RUNC_NO_ROOTPROP = pytest.mark.skip_runc(
    "runc 1.1.5 does not re-apply rootfsPropagation to / after pivot_root (/ ends up private)")


@pytest.mark.parametrize("prop,tag", [
    pytest.param("shared", "shared:", marks=RUNC_NO_ROOTPROP),
    ("private", None),
    pytest.param("slave", "master:", marks=RUNC_NO_ROOTPROP),
])
def test_rootfs_propagation(env, bundle, prop, tag):
    """The rootfs is a shared mount on the host; inside, "/" has the requested propagation."""
    rootfs = str(bundle / "rootfs")
    H.host(["mount", "--bind", rootfs, rootfs])
    env.add_cleanup(lambda: H.host(["umount", "-l", rootfs], check=False))
    H.host(["mount", "--make-shared", rootfs])
    update_config(bundle, {"linux": {"rootfsPropagation": prop}})
    sh(bundle, "awk '$5 == \"/\"' /proc/self/mountinfo")
    line = env.run_ok(bundle)
    pre = line.split(" - ")[0]
    if tag:
        assert tag in pre, f"rootfsPropagation {prop}: {line}"
    else:
        assert "shared:" not in pre and "master:" not in pre, f"rootfsPropagation {prop}: {line}"


# ---- proc, sysfs, cgroup -----------------------------------------------------------------


def test_proc_mounted(env, bundle):
    sh(bundle, "grep '^proc /proc proc' /proc/mounts | wc -l; echo $(tr '\\0' ' ' < /proc/1/cmdline)")
    out = env.run_ok(bundle).splitlines()
    assert out[0] == "1", out
    assert out[1].startswith("sh -c"), out


def test_sysfs_readonly(env, bundle):
    sh(bundle, "grep ' /sys sysfs ' /proc/mounts; mkdir /sys/x 2>&1; echo rc=$?")
    out = env.run_ok(bundle)
    f = proc_mounts_line(out, "/sys")
    assert f and "ro" in f[3].split(","), out
    assert "rc=1" in out


def test_cgroup_mount_readonly(env, bundle):
    sh(bundle, "grep -c ' /sys/fs/cgroup' /proc/mounts; mkdir /sys/fs/cgroup/x 2>&1; echo rc=$?; "
               "ls /sys/fs/cgroup | wc -l")
    out = env.run_ok(bundle).splitlines()
    assert int(out[0]) >= 1, out
    assert out[-2] == "rc=1", out
    assert int(out[-1]) >= 1, f"/sys/fs/cgroup is empty: {out}"


# ---- /dev ------------------------------------------------------------------------------


def test_dev_default_nodes(env, bundle):
    nodes = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
    sh(bundle, "for n in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$n; done")
    out = env.run_ok(bundle).splitlines()
    got = {ln.split()[0]: ln for ln in out}
    for n, mm in nodes.items():
        ln = got.get(f"/dev/{n}")
        assert ln, f"/dev/{n} missing: {out}"
        assert "character special file" in ln and mm in ln and ln.endswith(" 666"), ln


def test_dev_default_nodes_usable(env, bundle):
    sh(bundle, "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c && "
               "(echo x > /dev/full) 2>&1; echo done")
    out = env.run_ok(bundle).split("\n")
    assert out[0] == "3" and out[1] == "4", out
    assert "No space left on device" in out[2], out


def test_dev_symlinks(env, bundle):
    sh(bundle, "for l in fd stdin stdout stderr ptmx; do echo $l=$(readlink /dev/$l); done; "
               "grep -E ' /dev/(pts|shm|mqueue) ' /proc/mounts | cut -d' ' -f2,3")
    out = env.run_ok(bundle).splitlines()
    assert "fd=/proc/self/fd" in out and "stdin=/proc/self/fd/0" in out and \
        "stdout=/proc/self/fd/1" in out and "stderr=/proc/self/fd/2" in out, out
    assert "ptmx=pts/ptmx" in out, out
    for m in ("/dev/pts devpts", "/dev/shm tmpfs", "/dev/mqueue mqueue"):
        assert m in out, out


def test_dev_no_host_devices(env, bundle):
    sh(bundle, "ls /dev")
    out = set(env.run_ok(bundle).split())
    assert not out & {"kmsg", "mem", "sda", "vda", "loop0", "console"} - {"console"}, out


def test_linux_devices(env, bundle):
    def cfg(c):
        c["linux"]["devices"] = [
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1, "gid": 2},
            {"path": "/dev/deep/er/zero2", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
        ]
        c["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"})
    update_config(bundle, cfg)
    sh(bundle, "stat -c '%F %t:%T %a %u %g' /dev/mydev; head -c 4 /dev/deep/er/zero2 | wc -c; "
               "stat -c '%F %t:%T' /dev/deep/er/zero2")
    out = env.run_ok(bundle).splitlines()
    assert out[0] == "character special file 1:5 640 1 2", out
    assert out[1] == "4", out
    assert out[2] == "character special file 1:5", out


def test_device_cgroup_denies(env, bundle):
    """A device node that exists but is not allowed by linux.resources.devices cannot be opened."""
    def cfg(c):
        c["linux"]["devices"] = [{"path": "/dev/mem2", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}]
    update_config(bundle, cfg)
    sh(bundle, "head -c 1 /dev/mem2 > /dev/null 2>&1; echo rc=$?")
    assert env.run_ok(bundle).strip() == "rc=1"


# ---- masked and read-only paths ----------------------------------------------------------


def test_masked_paths_default(env, bundle):
    """Every default masked path that exists on this kernel reads empty inside."""
    masked = [p for p in H.read_config(bundle)["linux"]["maskedPaths"] if os.path.exists(p)]
    assert masked
    script = "; ".join(
        f"echo {p}=$(ls -A {p} | wc -l)" if os.path.isdir(p) else f"echo {p}=$(cat {p} | wc -c)"
        for p in masked)
    sh(bundle, script)
    out = env.run_ok(bundle).split()
    assert out == [f"{p}=0" for p in masked], out


def test_masked_paths_custom(env, bundle):
    root = bundle / "rootfs"
    (root / "secret" / "dir").mkdir(parents=True)
    (root / "secret" / "dir" / "f").write_text("secret\n")
    (root / "secret" / "file").write_text("secret\n")
    update_config(bundle, lambda c: c["linux"]["maskedPaths"].extend(
        ["/secret/dir", "/secret/file", "/does/not/exist"]))
    sh(bundle, "ls -A /secret/dir | wc -l; wc -c < /secret/file; cat /secret/dir/f 2>&1; "
               "echo x > /secret/file 2>&1; echo rc=$?")
    out = env.run_ok(bundle).splitlines()
    assert out[0] == "0" and out[1] == "0", out
    assert "No such file" in out[2], out
    assert out[-1] == "rc=0" or "Read-only" in "".join(out) or "Permission" in "".join(out)
    assert (root / "secret" / "file").read_text() == "secret\n"


def test_readonly_paths(env, bundle, data_dir):
    add_mount(bundle, "/mnt/rw", "bind", data_dir, ["rbind", "rw"])
    update_config(bundle, lambda c: c["linux"]["readonlyPaths"].extend(["/mnt/rw", "/does/not/exist"]))
    sh(bundle, "(echo 1 > /proc/sys/net/ipv4/ip_forward) 2>&1; echo rc=$?; touch /mnt/rw/new 2>&1; echo rc=$?; "
               "cat /mnt/rw/hello")
    out = env.run_ok(bundle)
    assert out.count("Read-only file system") == 2, out
    assert "rc=0" not in out, out
    assert "hello from the host" in out
    assert not (data_dir / "new").exists()


# ---- root ---------------------------------------------------------------------------------


def test_root_readonly(env, bundle):
    assert H.read_config(bundle)["root"]["readonly"] is True
    sh(bundle, "touch /rootfile 2>&1; echo rc=$?; grep ' / ' /proc/mounts | head -1")
    out = env.run_ok(bundle)
    assert "Read-only file system" in out and "rc=1" in out, out
    assert not (bundle / "rootfs" / "rootfile").exists()


def test_root_writable(env, bundle):
    update_config(bundle, {"root": {"readonly": False}})
    sh(bundle, "echo w > /rootfile && echo ok")
    assert env.run_ok(bundle).strip() == "ok"
    assert (bundle / "rootfs" / "rootfile").read_text() == "w\n"


def test_relative_root_path_resolved_against_bundle(env, bundle):
    (bundle / "sub").mkdir()
    shutil.move(str(bundle / "rootfs"), str(bundle / "sub" / "rootfs"))
    update_config(bundle, {"root": {"path": "sub/rootfs"}})
    sh(bundle, "echo relative-ok")
    # cwd is a neutral directory (never the bundle), and also the filesystem root
    assert env.run_ok(bundle, cwd=env.s.cwd).strip() == "relative-ok"
    assert env.run_ok(bundle, cwd="/").strip() == "relative-ok"


def test_absolute_root_path(env, bundle):
    update_config(bundle, {"root": {"path": str(bundle / "rootfs")}})
    sh(bundle, "echo abs-ok")
    assert env.run_ok(bundle).strip() == "abs-ok"


def test_relative_bundle_flag(env, bundle):
    set_args(bundle, "sleep", "1000")
    cid = env.new_id()
    res = env.runtime("create", "--bundle", bundle.name, cid, cwd=bundle.parent)
    assert res.rc == 0, res
    st = env.state(cid)
    assert os.path.isabs(st["bundle"]) and os.path.realpath(st["bundle"]) == os.path.realpath(bundle), st


def test_mount_destination_created(env, bundle, data_dir):
    """Missing mount points are created inside the rootfs (even with a read-only root)."""
    add_mount(bundle, "/new/deep/dir", "bind", data_dir, ["bind", "ro"])
    sh(bundle, "cat /new/deep/dir/hello")
    assert "hello from the host" in env.run_ok(bundle)
