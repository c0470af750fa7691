"""NOTIFY_SOCKET (systemd Type=notify, podman --sdnotify=container, Quadlet Notify=), as
runc does it: the container gets its own socket at /run/notify/notify.sock (a read-only
bind mount of the state dir's notify/) and NOTIFY_SOCKET in its environment; `start`
(or `run`) relays the container's READY= to the runtime's $NOTIFY_SOCKET, followed by
MAINPID=<init pid> and BARRIER=1 (sd_notify_barrier), and returns then."""
import array
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import helpers as H
from helpers import assert_ok, set_args

# A static sd_notify for the busybox rootfs: sends argv[1] (with \\n for newlines) to
# $NOTIFY_SOCKET, as `systemd-notify` would.
NOTIFY_C = r"""
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || argc < 2) return 2;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  char msg[4096]; size_t n = 0;
  for (const char *p = argv[1]; *p && n < sizeof msg; p++) {
    if (p[0] == '\\' && p[1] == 'n') { msg[n++] = '\n'; p++; } else msg[n++] = *p;
  }
  return sendto(s, msg, n, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)n ? 0 : 1;
}
"""


@pytest.fixture(scope="session")
def sd_notify_binary(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the sd_notify helper")
    d = tmp_path_factory.mktemp("notify")
    (d / "notify.c").write_text(NOTIFY_C)
    out = d / "sd-notify"
    r = subprocess.run([cc, "-static", "-O2", "-o", str(out), str(d / "notify.c")], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static sd_notify helper: {r.stderr[-300:]}")
    return out


class HostNotifySocket:
    """systemd's side: a datagram socket that records what arrives and, like systemd,
    closes the fd of a BARRIER=1 at once."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: list[str] = []
        self.barrier_fds = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
            except socket.timeout:
                continue
            except OSError:
                return
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(data[: len(data) - len(data) % 4])
                    for fd in fds:
                        os.close(fd)
                        self.barrier_fds += 1
            self.messages.append(msg.decode(errors="replace"))

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


@pytest.fixture
def host_notify(env):
    h = HostNotifySocket(env.sock_path("notify"))
    yield h
    h.close()


def notifying_bundle(bundle, sd_notify_binary, script):
    shutil.copy2(sd_notify_binary, bundle / "rootfs" / "bin" / "sd-notify")
    set_args(bundle, "sh", "-c", script)


def test_start_relays_ready(env, bundle, host_notify, sd_notify_binary):
    notifying_bundle(bundle, sd_notify_binary,
                     'echo "env=$NOTIFY_SOCKET"; ls -l /run/notify/notify.sock; sleep 0.5; '
                     'sd-notify "STATUS=warming up"; sd-notify "READY=1\\nSTATUS=serving"; exec sleep 1000')
    with_notify = {**os.environ, "NOTIFY_SOCKET": host_notify.path}
    res = assert_ok(env.create(bundle, None, env=with_notify))
    t0 = time.monotonic()
    assert_ok(env.start(res.cid, env=with_notify))
    # start returned once the container was ready (it slept 0.5 s first)
    assert time.monotonic() - t0 >= 0.4
    init = env.state(res.cid)["pid"]
    assert host_notify.messages[:2] == ["READY=1\n", f"MAINPID={init}\n"], host_notify.messages
    if H.is_berth():  # runc 1.1 predates the barrier (runc 1.2 sends it too)
        assert host_notify.messages[2] == "BARRIER=1" and host_notify.barrier_fds == 1, host_notify.messages
    out = res.reread().out
    assert "env=/run/notify/notify.sock" in out, out
    assert out.count("srwxrwxrwx") == 1, out  # the socket, writable by any container user
    assert_ok(env.delete(res.cid, force=True))
    env.assert_no_trace(res.cid, bundle)


def test_run_detached_relays_ready(env, bundle, host_notify, sd_notify_binary):
    notifying_bundle(bundle, sd_notify_binary, 'sd-notify READY=1; exec sleep 1000')
    res = assert_ok(env.run_detached(bundle, None, env={**os.environ, "NOTIFY_SOCKET": host_notify.path}))
    init = env.state(res.cid)["pid"]
    assert host_notify.messages[:2] == ["READY=1\n", f"MAINPID={init}\n"], host_notify.messages


@pytest.mark.skip_runc("runc 1.1 waits while /proc/<init> exists, and the exited init stays a zombie "
                       "until its reaper (pytest, blocked in `start`) collects it")
def test_start_returns_when_the_container_exits_unready(env, bundle, host_notify, sd_notify_binary):
    notifying_bundle(bundle, sd_notify_binary, "sleep 0.3; exit 3")
    with_notify = {**os.environ, "NOTIFY_SOCKET": host_notify.path}
    res = assert_ok(env.create(bundle, None, env=with_notify))
    assert_ok(env.start(res.cid, env=with_notify, timeout=20))
    env.wait_status(res.cid, "stopped")
    assert host_notify.messages == [], host_notify.messages


def test_without_notify_socket_nothing_is_mounted(env, bundle, sd_notify_binary):
    notifying_bundle(bundle, sd_notify_binary, 'echo "env=${NOTIFY_SOCKET-unset}"; ls /run/notify 2>&1 | head -1')
    environ = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    out = assert_ok(env.run(bundle, env=environ)).out
    assert "env=unset" in out and "No such file" in out, out
