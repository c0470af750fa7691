"""Namespaces: pid, uts, network, ipc, user, cgroup, time, and joining by path."""
import os
import re
import subprocess
from pathlib import Path

import pytest

import helpers as H
from helpers import assert_ok, set_args, sh, update_config


def host_ns(kind, pid="self"):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def without_ns(cfg, kind):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]


def with_ns(cfg, kind, path=None):
    without_ns(cfg, kind)
    ns = {"type": kind}
    if path:
        ns["path"] = str(path)
    cfg["linux"]["namespaces"].append(ns)


@pytest.mark.parametrize("kind,nsname", [
    ("pid", "pid"), ("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("mount", "mnt"),
    ("cgroup", "cgroup"),
])
def test_namespace_is_new(env, bundle, kind, nsname):
    sh(bundle, f"readlink /proc/self/ns/{nsname}")
    out = env.run_ok(bundle).strip()
    assert re.fullmatch(rf"{nsname}:\[\d+\]", out), out
    assert out != host_ns(nsname), f"{kind} namespace not unshared"


@pytest.mark.parametrize("kind,nsname", [("network", "net"), ("ipc", "ipc"), ("uts", "uts")])
def test_namespace_absent_means_host(env, bundle, kind, nsname):
    def cfg(c):
        without_ns(c, kind)
        if kind == "uts":
            c.pop("hostname", None)  # a hostname needs a private uts namespace
    update_config(bundle, cfg)
    sh(bundle, f"readlink /proc/self/ns/{nsname}")
    assert env.run_ok(bundle).strip() == host_ns(nsname)


def test_pid_namespace_init_is_pid1(env, bundle):
    sh(bundle, "echo $$; ls -d /proc/[0-9]* | wc -l")
    out = env.run_ok(bundle).split()
    assert out[0] == "1", out
    # only the shell and ls exist in the new pid namespace
    assert int(out[1]) <= 3, out


def test_pid_namespace_host_pid_differs(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.run_detached(bundle))
    pid = env.state(res.cid)["pid"]
    assert pid != 1
    st = H.proc_status(pid)
    assert st["NSpid"].split() == [str(pid), "1"], st["NSpid"]


def test_uts_hostname(env, bundle):
    update_config(bundle, {"hostname": "berth-host"})
    sh(bundle, "hostname; cat /proc/sys/kernel/hostname")
    assert env.run_ok(bundle).split() == ["berth-host", "berth-host"]
    assert os.uname().nodename != "berth-host"


@pytest.mark.skip_runc("runc 1.1 ignores domainname (supported from runc 1.2)")
def test_uts_domainname(env, bundle):
    update_config(bundle, {"hostname": "berth-host", "domainname": "example.test"})
    sh(bundle, "hostname; cat /proc/sys/kernel/domainname")
    assert env.run_ok(bundle).split() == ["berth-host", "example.test"]


def test_hostname_without_uts_namespace_fails(env, bundle):
    update_config(bundle, lambda c: without_ns(c, "uts"))
    set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, f"setting the hostname without a private uts namespace must fail: {res!r}"
    env.assert_no_trace(res.cid, bundle)


def test_network_namespace_only_lo(env, bundle):
    sh(bundle, "tail -n +3 /proc/net/dev | cut -d: -f1; ls /sys/class/net")
    out = env.run_ok(bundle).split()
    assert out == ["lo", "lo"], out


def test_ipc_namespace_isolated(env, bundle):
    """A SysV shm segment of the host is not visible inside."""
    sh(bundle, "cat /proc/sysvipc/shm | wc -l; readlink /proc/self/ns/ipc")
    out = env.run_ok(bundle).split()
    assert out[0] == "1", f"container sees host shm segments: {out}"
    assert out[1] != host_ns("ipc")


def test_user_namespace(env, bundle):
    def cfg(c):
        with_ns(c, "user")
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["process"]["args"] = ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map; sleep 1000"]
    update_config(bundle, cfg)
    res = assert_ok(env.run_detached(bundle))
    H.wait_for(lambda: len(res.reread().out.splitlines()) >= 3, what="container output")
    lines = res.out.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)"), lines
    assert lines[1].split() == ["0", "100000", "65536"], lines
    assert lines[2].split() == ["0", "200000", "65536"], lines
    pid = env.state(res.cid)["pid"]
    st = H.proc_status(pid)
    assert st["Uid"].split()[0] == "100000", st["Uid"]
    assert st["Gid"].split()[0] == "200000", st["Gid"]
    assert host_ns("user", pid) != host_ns("user")


def test_user_namespace_multiple_mappings(env, bundle):
    def cfg(c):
        with_ns(c, "user")
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 1000},
                                     {"containerID": 1000, "hostID": 300000, "size": 10}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["process"]["args"] = ["cat", "/proc/self/uid_map"]
    update_config(bundle, cfg)
    rows = [ln.split() for ln in env.run_ok(bundle).strip().splitlines()]
    assert sorted(rows) == sorted([["0", "100000", "1000"], ["1000", "300000", "10"]])


def test_cgroup_namespace(env, bundle):
    sh(bundle, "cat /proc/self/cgroup")
    out = env.run_ok(bundle)
    lines = [ln for ln in out.splitlines() if ln]
    assert lines, out
    for ln in lines:
        assert ln.split(":", 2)[2] == "/", f"cgroup path not namespaced: {ln!r} in\n{out}"


def test_no_cgroup_namespace_shows_path(env, bundle):
    update_config(bundle, lambda c: without_ns(c, "cgroup"))
    sh(bundle, "cat /proc/self/cgroup")
    cg = H.read_config(bundle)["linux"]["cgroupsPath"]
    out = env.run_ok(bundle)
    assert any(ln.endswith(":" + cg) for ln in out.splitlines()), f"{cg} not in\n{out}"


@pytest.mark.skip_runc("runc 1.1 has no time namespace support (added in runc 1.2)")
def test_time_namespace_offsets(env, bundle):
    year = 365 * 24 * 3600

    def cfg(c):
        with_ns(c, "time")
        c["linux"]["timeOffsets"] = {"monotonic": {"secs": year, "nanosecs": 0},
                                     "boottime": {"secs": 2 * year, "nanosecs": 500}}
    update_config(bundle, cfg)
    sh(bundle, "cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime")
    out = env.run_ok(bundle).splitlines()
    offsets = {ln.split()[0]: ln.split()[1:] for ln in out[:2]}
    assert offsets.get("monotonic") == [str(year), "0"], out
    assert offsets.get("boottime") == [str(2 * year), "500"], out
    assert float(out[2]) >= 2 * year, f"/proc/uptime does not include the boottime offset: {out}"


@pytest.mark.skip_runc("runc 1.1 has no time namespace support (added in runc 1.2)")
def test_time_namespace_without_offsets(env, bundle):
    update_config(bundle, lambda c: with_ns(c, "time"))
    sh(bundle, "readlink /proc/self/ns/time")
    out = env.run_ok(bundle).strip()
    assert out != host_ns("time")


@pytest.fixture
def named_netns(env):
    """A network namespace made with `ip netns add`, removed afterwards (with the
    /run/netns mount that iproute2 creates, so the leak checker stays happy)."""
    name = f"berth-{env.key}"
    had_dir = os.path.isdir("/run/netns")
    was_mount = H.is_mountpoint("/run/netns") if had_dir else False
    H.host(["ip", "netns", "add", name])

    def cleanup():
        H.host(["ip", "netns", "del", name], check=False)
        if not was_mount and H.is_mountpoint("/run/netns"):
            H.host(["umount", "/run/netns"], check=False)
        if not had_dir:
            with __import__("contextlib").suppress(OSError):
                os.rmdir("/run/netns")

    env.add_cleanup(cleanup)
    return name, f"/run/netns/{name}"


def test_join_netns_by_path(env, bundle, named_netns):
    name, path = named_netns
    H.host(["ip", "netns", "exec", name, "ip", "link", "add", "vb0", "type", "veth", "peer", "name", "vb1"])
    update_config(bundle, lambda c: with_ns(c, "network", path))
    sh(bundle, "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1")
    out = env.run_ok(bundle).split()
    want = f"net:[{os.stat(path).st_ino}]"
    assert out[0] == want, out
    assert sorted(out[1:]) == ["lo", "vb0", "vb1"], out


def test_join_other_containers_namespaces(env, make_bundle):
    a, b = make_bundle(), make_bundle()
    set_args(a, "sleep", "1000")
    ra = assert_ok(env.run_detached(a))
    apid = env.state(ra.cid)["pid"]

    def cfg(c):
        for kind, nsname in (("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("pid", "pid")):
            with_ns(c, kind, f"/proc/{apid}/ns/{nsname}")
        c["process"]["args"] = ["sh", "-c", "for n in net ipc uts pid; do readlink /proc/self/ns/$n; done; "
                                            "ps -o pid,comm | grep -c sleep"]
        c.pop("hostname", None)
    update_config(b, cfg)
    out = env.run_ok(b).split()
    assert out[:4] == [host_ns(n, apid) for n in ("net", "ipc", "uts", "pid")], out
    assert out[4] == "1", f"container b should see a's sleep in the shared pid namespace: {out}"


def test_join_nonexistent_ns_path_fails(env, bundle):
    update_config(bundle, lambda c: with_ns(c, "network", f"/run/netns/does-not-exist-{env.key}"))
    set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)


def test_join_wrong_ns_type_fails(env, bundle):
    """A path to an ipc namespace given as the network namespace is rejected."""
    update_config(bundle, lambda c: with_ns(c, "network", "/proc/self/ns/ipc"))
    set_args(bundle, "true")
    res = env.create(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)


@pytest.fixture
def busy_cpu():
    """One CPU kept busy by a spinning process pinned to it; yields that CPU's number.
    Runtime calls pinned to the same CPU then lose it at arbitrary points, so messages
    that two processes race to send arrive in either order."""
    cpu = min(os.sched_getaffinity(0))
    spinner = subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"], stdin=subprocess.DEVNULL,
                               preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    try:
        yield cpu
    finally:
        spinner.kill()
        spinner.wait()


@pytest.mark.slow
def test_create_joining_pid_namespace_under_cpu_contention(env, make_bundle, busy_cpu):
    """A container that joins a pid namespace by path (every CRI container joins its
    pod's) is born through an intermediate process that forks the init. The state must
    pair the init's pid with the init's own start time, whichever of the two processes'
    messages reaches `create` first: with the intermediate's start time, a container
    whose two processes started in different clock ticks looks stopped, and `start`
    fails with "cannot start a container that has stopped"."""
    holder = make_bundle("holder")
    set_args(holder, "sleep", "1000")
    hpid = env.state(assert_ok(env.run_detached(holder)).cid)["pid"]
    joiner = make_bundle("joiner")

    def cfg(c):
        with_ns(c, "pid", f"/proc/{hpid}/ns/pid")
        c["process"]["args"] = ["sleep", "1000"]
    update_config(joiner, cfg)

    def pin():
        os.sched_setaffinity(0, {busy_cpu})
    bad = []
    for i in range(100):
        cid = env.new_id()
        assert_ok(env.create(joiner, cid, preexec_fn=pin))
        st = env.state(cid)
        if st["status"] != "created":
            bad.append((i, "create", st["status"], st["pid"]))
        else:
            r = env.start(cid, preexec_fn=pin)
            if r.rc != 0:
                bad.append((i, "start", r.err.strip()))
        assert_ok(env.delete(cid, force=True))
    assert not bad, f"{len(bad)} of 100 containers were not usable after create: {bad[:5]}"
