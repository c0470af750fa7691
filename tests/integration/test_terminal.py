"""process.terminal: --console-socket, consoleSize, and `run` relaying a pty."""
import fcntl
import os
import pty
import struct
import termios

import pytest

import helpers as H
from helpers import assert_ok, set_args, update_config

TIOCGPTN = 0x80045430


def terminal_bundle(bundle, args=("sh",), size=None):
    def cfg(c):
        c["process"]["terminal"] = True
        c["process"]["args"] = list(args)
        if size:
            c["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
    update_config(bundle, cfg)


@pytest.fixture
def console(env):
    listener = H.UnixListener(env.sock_path("console"))
    env.add_cleanup(listener.close)
    return listener


def create_with_console(env, bundle, console):
    res = assert_ok(env.create(bundle, None, "--console-socket", console.path))
    payload, fds = console.wait()
    assert len(fds) == 1, f"expected exactly one fd over the console socket, got {fds}"
    return res, fds[0], payload


def test_console_socket_receives_pty_master(env, bundle, console):
    terminal_bundle(bundle)
    res, master, payload = create_with_console(env, bundle, console)
    assert os.isatty(master)
    ptn = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    assert ptn == 0, "the pty should come from the container's own devpts instance"
    assert_ok(env.start(res.cid))
    os.write(master, b"echo $((40+2))\n")
    H.read_until(master, b"42\r\n")
    os.write(master, b"exit 3\n")
    env.wait_status(res.cid, "stopped")


def test_console_stdio_is_the_tty(env, bundle, console):
    terminal_bundle(bundle, ["sh", "-c", "tty; for i in 0 1 2; do readlink /proc/self/fd/$i; done; "
                                         "echo done; sleep 1000"])
    res, master, _ = create_with_console(env, bundle, console)
    assert_ok(env.start(res.cid))
    out = H.strip_ansi(H.read_until(master, b"done"))
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    assert lines[:4] == ["/dev/pts/0"] * 4, lines


def test_console_size(env, bundle, console):
    terminal_bundle(bundle, ["sh", "-c", "stty size; echo done; sleep 1000"], size=(30, 100))
    res, master, _ = create_with_console(env, bundle, console)
    rows, cols = struct.unpack("HHHH", fcntl.ioctl(master, termios.TIOCGWINSZ, b"\0" * 8))[:2]
    assert (rows, cols) == (30, 100), "winsize must be set before the master is sent"
    assert_ok(env.start(res.cid))
    out = H.strip_ansi(H.read_until(master, b"done"))
    assert "30 100" in out, out


def test_console_controlling_terminal(env, bundle, console):
    """The container process is a session leader with the pty as controlling terminal:
    ^C on the master interrupts the foreground command."""
    terminal_bundle(bundle)
    res, master, _ = create_with_console(env, bundle, console)
    assert_ok(env.start(res.cid))
    os.write(master, b"sleep 100; echo after-sleep-$((1+1))\n")
    H.read_until(master, b"sleep 100")
    import time
    time.sleep(0.3)
    os.write(master, b"\x03")
    os.write(master, b"echo alive-$((2+3))\n")
    out = H.read_until(master, b"alive-5\r\n", timeout=10)
    assert b"after-sleep-2" in out or b"alive-5" in out


def test_terminal_create_without_console_socket_fails(env, bundle):
    terminal_bundle(bundle)
    res = env.create(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)


def test_console_socket_missing_fails(env, bundle):
    terminal_bundle(bundle)
    res = env.create(bundle, None, "--console-socket", env.sock_path("nobody-listens"))
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)


def _ctty():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_run_with_terminal_under_pty(env, bundle):
    """`run` with terminal true and no --console-socket relays between its own tty and the
    container's pty, and returns the container's exit status."""
    terminal_bundle(bundle)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    cid = env.new_id()
    bg = H.Background(lambda: env.runtime("run", "--bundle", bundle, cid, stdin=slave, stdout=slave,
                                          stderr=slave, start_new_session=True, preexec_fn=_ctty))
    try:
        H.read_until(master, b"# ", timeout=20)  # busybox root prompt
        os.write(master, b"stty size; echo $((6*7)); exit 4\n")
        out = H.strip_ansi(H.read_until(master, b"42", timeout=10))
        res = bg.result(H.DEFAULT_TIMEOUT + 10)
    finally:
        os.close(slave)
        with __import__("contextlib").suppress(Exception):
            bg.result(H.DEFAULT_TIMEOUT + 10)
        os.close(master)
    assert res.rc == 4, res
    assert "33 111" in out, f"the winsize of run's terminal should be copied: {out!r}"
    env.assert_no_trace(cid, bundle)


def test_run_detached_with_terminal_needs_console_socket(env, bundle):
    terminal_bundle(bundle)
    res = env.run_detached(bundle)
    assert res.rc != 0, res
    env.assert_no_trace(res.cid, bundle)
