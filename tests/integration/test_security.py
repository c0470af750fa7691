"""The container cannot reach the runtime binary (CVE-2019-5736 family), masked paths.

Every test here runs a *copy* of the runtime binary, so a runtime that is vulnerable
corrupts only the copy (and the test fails), never the build's binary."""
import os
import shutil
import time

import pytest

import helpers as H
from helpers import assert_ok, set_args, sh, update_config


@pytest.fixture
def rtcopy(env):
    p = env.path("runtime-copy")
    shutil.copy2(os.path.realpath(H.RUNTIME), p)
    os.chmod(p, 0o755)
    return p


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError as e:
        return f"<{e.strerror}>"


def assert_not_runtime(exe, rtcopy):
    for bad in (str(rtcopy), os.path.realpath(H.RUNTIME)):
        assert not exe.startswith(bad), \
            f"the container process's /proc/<pid>/exe is the runtime binary on the host ({exe})"


@pytest.mark.parametrize("how", ["args", "shebang"])
def test_proc_self_exe_is_not_the_runtime(env, bundle, rtcopy, how):
    before = H.sha256(rtcopy)
    if how == "args":
        set_args(bundle, "/proc/self/exe")
    else:
        (bundle / "rootfs" / "evil").write_text("#!/proc/self/exe\n")
        os.chmod(bundle / "rootfs" / "evil", 0o755)
        set_args(bundle, "/evil")
    res = assert_ok(env.create(bundle, binary=rtcopy))
    pid = env.state(res.cid)["pid"]
    assert_not_runtime(exe_of(pid), rtcopy)
    r = env.start(res.cid, binary=rtcopy)
    assert r.rc == 0, r
    # whatever it became, if it is still running it is not the runtime binary
    exe = exe_of(pid)
    if H.pid_alive(pid):
        assert_not_runtime(exe, rtcopy)
    env.wait_status(res.cid, "stopped", timeout=20)
    assert H.sha256(rtcopy) == before, "the runtime binary was modified"


ATTACKER = r"""
echo ready
i=0
found=
while [ $i -lt 1500 ]; do
  for p in /proc/[0-9]*; do
    [ "$p" = "/proc/$$" ] && continue
    l=$(readlink $p/exe 2>/dev/null) || continue
    case "$l" in */busybox) continue;; esac
    if exec 3<"$p/exe"; then echo "opened $p $l"; found=1; break 2; fi
  done
  i=$((i+1))
  sleep 0.01
done
if [ -z "$found" ]; then echo none-found; exec sleep 1000; fi
j=0
while [ $j -lt 100 ]; do
  if (printf PWNED 1<>/proc/self/fd/3) 2>/dev/null; then echo WROTE; exec sleep 1000; fi
  if (printf PWNED >>/proc/self/fd/3) 2>/dev/null; then echo WROTE; exec sleep 1000; fi
  sleep 0.05; j=$((j+1))
done
echo write-failed
exec sleep 1000
"""


@pytest.mark.parametrize("caps", ["default-caps", "ptrace-caps"])
def test_overwrite_runtime_through_proc_pid_exe(env, make_bundle, rtcopy, caps):
    """CVE-2019-5736: a process in the container opens /proc/<pid>/exe of the runtime's
    init (in its pid namespace) and writes through it once the binary is no longer
    executing. The runtime binary on the host must stay intact. The attacker has the
    default capabilities, or also CAP_SYS_PTRACE and CAP_DAC_OVERRIDE."""
    before = H.sha256(rtcopy)
    attacker, victim = make_bundle("attacker"), make_bundle("victim")

    def acfg(c):
        if caps == "ptrace-caps":
            for k in ("bounding", "effective", "permitted"):
                c["process"]["capabilities"][k] += ["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"]
        c["process"]["args"] = ["sh", "-c", ATTACKER]
    update_config(attacker, acfg)
    a = assert_ok(env.run_detached(attacker, None, binary=rtcopy))
    H.wait_for(lambda: "ready" in a.reread().out, what="attacker ready")
    apid = env.state(a.cid)["pid"]

    (victim / "rootfs" / "evil").write_text("#!/proc/self/exe\n")
    os.chmod(victim / "rootfs" / "evil", 0o755)

    def vcfg(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
        c["linux"]["namespaces"].append({"type": "pid", "path": f"/proc/{apid}/ns/pid"})
        c["process"]["args"] = ["/evil"]
    update_config(victim, vcfg)
    v = assert_ok(env.create(victim, binary=rtcopy))
    vpid = env.state(v.cid)["pid"]
    victim_exe = exe_of(vpid)
    # give the attacker time to find the created init, then start (the shebang makes the
    # init exec /proc/self/exe) and let it try to write once the runtime is gone
    deadline = time.monotonic() + (3 if caps == "ptrace-caps" else 1)
    while time.monotonic() < deadline and "opened" not in a.reread().out:
        time.sleep(0.05)
    r = env.start(v.cid, binary=rtcopy)
    assert r.rc == 0, r
    env.wait_status(v.cid, "stopped", timeout=20)
    H.wait_for(lambda: any(m in a.reread().out for m in ("WROTE", "write-failed", "none-found")),
               timeout=40, what="the attack to finish")
    out = a.out
    assert H.sha256(rtcopy) == before, f"the runtime binary was overwritten from the container: {out}"
    assert "WROTE" not in out, out
    # and the created container's init was never the runtime binary itself
    assert_not_runtime(victim_exe, rtcopy)


def test_host_runtime_binary_not_visible(env, bundle):
    """The runtime's own path on the host is not reachable inside the container."""
    sh(bundle, f"ls {os.path.realpath(H.RUNTIME)} 2>&1; echo rc=$?")
    out = env.run_ok(bundle)
    assert "rc=1" in out, out


def test_masked_host_information(env, bundle):
    masked = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                          "/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware")
              if os.path.exists(p)]
    script = "; ".join(
        f"echo {p}=$(ls -A {p} | wc -l)" if os.path.isdir(p) else f"echo {p}=$(cat {p} 2>/dev/null | wc -c)"
        for p in masked)
    sh(bundle, script)
    out = env.run_ok(bundle).split()
    assert out == [f"{p}=0" for p in masked], out


def test_sysrq_trigger_readonly(env, bundle):
    sh(bundle, "(echo h > /proc/sysrq-trigger) 2>&1; echo rc=$?")
    out = env.run_ok(bundle)
    assert "rc=1" in out, out


def test_cannot_mount_without_cap_sys_admin(env, bundle):
    sh(bundle, "mount -t tmpfs none /tmp 2>&1; echo rc=$?")
    out = env.run_ok(bundle)
    assert "rc=1" in out or "rc=255" in out, out
    assert "permission denied" in out.lower() or "not permitted" in out.lower(), out


def test_cannot_see_host_processes(env, bundle):
    sh(bundle, "ls -d /proc/[0-9]* | wc -l")
    assert int(env.run_ok(bundle)) <= 3
