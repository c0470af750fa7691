"""exec: a new process in a running container (runc's `exec` semantics)."""
import json
import os

import pytest

import helpers as H
from helpers import assert_fail, assert_ok, set_args, update_config


def running(env, bundle, *extra_cfg):
    set_args(bundle, "sleep", "1000")
    for c in extra_cfg:
        update_config(bundle, c)
    res = assert_ok(env.run_detached(bundle))
    return res.cid


def test_exec_joins_namespaces_and_cgroup(env, bundle):
    cid = running(env, bundle)
    init = env.state(cid)["pid"]
    res = assert_ok(env.runtime("exec", cid, "sh", "-c", "echo $$; hostname; grep '^0::' /proc/self/cgroup"))
    pid, hostname, cgroup = res.out.split("\n")[:3]
    assert pid != "1" and int(pid) > 1  # inside the container's pid namespace
    for ns in ("mnt", "net", "ipc", "uts", "pid", "cgroup"):
        assert os.readlink(f"/proc/{init}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    assert hostname == H.read_config(bundle)["hostname"]
    assert cgroup == "0::/", cgroup  # the container's cgroup namespace root = its own cgroup


def test_exec_exit_code_and_signal(env, bundle):
    cid = running(env, bundle)
    assert env.runtime("exec", cid, "sh", "-c", "exit 7").rc == 7
    assert env.runtime("exec", cid, "sh", "-c", "kill -9 $$").rc == 137


def test_exec_missing_binary_exits_255(env, bundle):
    cid = running(env, bundle)
    res = env.runtime("exec", cid, "no-such-binary")
    assert res.rc == 255, res
    assert "executable file not found in $PATH" in res.err, res


def test_exec_stopped_container(env, bundle):
    set_args(bundle, "true")
    res = assert_ok(env.create(bundle))
    assert_ok(env.start(res.cid))
    env.wait_status(res.cid, "stopped")
    r = env.runtime("exec", res.cid, "true")
    assert r.rc == 255 and "cannot exec in a stopped container" in r.err, r
    assert_ok(env.delete(res.cid))


def test_exec_flags(env, bundle):
    cid = running(env, bundle)
    res = assert_ok(env.runtime("exec", "--user", "1000:1001", "--additional-gids", "5", "--cwd", "/tmp",
                                "--env", "FOO=bar", "--no-new-privs", cid,
                                "sh", "-c", "id -u; id -g; id -G; pwd; echo $FOO; grep NoNewPrivs /proc/self/status"))
    lines = res.out.split("\n")
    assert lines[0] == "1000" and lines[1] == "1001"
    assert "5" in lines[2].split()
    assert lines[3] == "/tmp" and lines[4] == "bar"
    assert lines[5].split() == ["NoNewPrivs:", "1"]


def test_exec_cap_flag_adds_capability(env, bundle):
    cid = running(env, bundle)
    out = assert_ok(env.runtime("exec", "--cap", "CAP_SYS_ADMIN", cid, "grep", "CapEff", "/proc/self/status")).out
    eff = int(out.split()[1], 16)
    assert eff & (1 << 21), out  # CAP_SYS_ADMIN


def test_exec_process_file(env, bundle):
    cid = running(env, bundle)
    proc = {"args": ["sh", "-c", "echo from-process-file $X"], "env": ["X=1", "PATH=/bin"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}}
    path = env.path("process.json")
    path.write_text(json.dumps(proc))
    out = assert_ok(env.runtime("exec", "--process", str(path), cid)).out
    assert out.strip() == "from-process-file 1"


def test_exec_detach_pid_file(env, bundle):
    cid = running(env, bundle)
    pidfile = env.path("exec.pid")
    assert_ok(env.runtime("exec", "--detach", "--pid-file", str(pidfile), cid, "sleep", "100"))
    text = pidfile.read_text()
    assert text == text.strip(), "pid file must have no trailing newline"
    pid = int(text)
    env.track_pid(pid)
    assert H.pid_alive(pid)
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{env.state(cid)['pid']}/ns/pid")
    ps = json.loads(assert_ok(env.runtime("ps", "--format", "json", cid)).out)
    assert pid in ps, ps


def test_exec_gets_container_seccomp(env, bundle):
    update_config(bundle, {"linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}}})
    cid = running(env, bundle)
    res = env.runtime("exec", cid, "mkdir", "/tmp/denied")
    assert res.rc != 0 and "Operation not permitted" in res.err, res
    assert "Seccomp:\t2" in assert_ok(env.runtime("exec", cid, "cat", "/proc/self/status")).out


def test_exec_preserve_fds(env, bundle):
    cid = running(env, bundle)
    r, w = os.pipe()
    os.write(w, b"through-fd-3\n")
    os.close(w)
    try:
        out = assert_ok(env.runtime("exec", "--preserve-fds", "1", cid, "cat", "/proc/self/fd/3",
                                    fd_map={3: r})).out
    finally:
        os.close(r)
    assert out == "through-fd-3\n"


def test_exec_only_stdio_fds(env, bundle):
    cid = running(env, bundle)
    leak = os.open("/dev/null", os.O_RDONLY)  # not CLOEXEC after dup2 below
    try:
        out = assert_ok(env.runtime("exec", cid, "ls", "/proc/self/fd", fd_map={5: leak})).out
    finally:
        os.close(leak)
    assert sorted(out.split()) == ["0", "1", "2", "3"], out  # 3: ls's own directory fd


@pytest.mark.skipif(not H.is_berth(), reason="exec from a non-runtime binary check is berth's design")
def test_exec_process_is_not_the_runtime_binary(env, bundle):
    cid = running(env, bundle)
    pidfile = env.path("e.pid")
    assert_ok(env.runtime("exec", "-d", "--pid-file", str(pidfile), cid, "/proc/self/exe"))
    # /proc/self/exe of berth-dmz re-execs itself and exits: nothing of berth runs.
    pid = int(pidfile.read_text())
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        return
    assert os.path.realpath(H.RUNTIME) not in exe
