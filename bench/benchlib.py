"""Pieces the benchmark scripts share: timing one spawned command, and the statistics
they print."""
from __future__ import annotations

import os
import select
import signal
import statistics
import subprocess
import time


def spawn_timed(argv, env, *, stderr_path, stdout_path=None, timeout=30, search_path=False):
    """Runs argv (stdin /dev/null, stdout to stdout_path or /dev/null, stderr to
    stderr_path) in a process group of its own, killed after `timeout` seconds.
    -> (exit code, wall ms spawn to reap, CPU ms user+sys of it and the children it reaped,
    the last 2000 characters of its stderr)."""
    out = os.open(stdout_path or "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, out, 1),
               (os.POSIX_SPAWN_DUP2, err, 2)]
    spawn = os.posix_spawnp if search_path else os.posix_spawn
    t0 = time.perf_counter_ns()
    pid = spawn(argv[0], argv, env, file_actions=actions, setpgroup=0)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if not poller.poll(timeout * 1000):
        os.killpg(pid, signal.SIGKILL)
    os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    os.close(out)
    os.close(err)
    with open(stderr_path, errors="replace") as f:
        tail = f.read()[-2000:]
    return (os.waitstatus_to_exitcode(status), (t1 - t0) / 1e6,
            (usage.ru_utime + usage.ru_stime) * 1e3, tail)


def med(xs):
    return statistics.median(xs) if xs else None


def p90(xs):
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def memory(pid):
    """{rss, pss, private, anon} in bytes from /proc/<pid>/smaps_rollup. RSS counts every
    mapped page, shared library pages included; private (USS) is what the process alone
    costs; anon is its heap, stacks and other anonymous memory (no file behind it)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1]) * 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"],
            "private": fields["Private_Clean"] + fields["Private_Dirty"], "anon": fields["Anonymous"]}


def stop_process(proc, timeout):
    """SIGTERM, then SIGKILL past `timeout` seconds; always reaped."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

