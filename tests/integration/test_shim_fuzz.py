"""berth-shim under hostile input: nothing a client sends on ctl.sock or attach.sock
(invalid UTF-8, invalid JSON, oversized lines and frames, odd frame types, connections
closed mid-message) may end the monitor: the shim keeps serving, the container keeps
running, and its exit is still recorded."""
from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time

import pytest

import helpers as H
from helpers import set_args
from shim_helpers import MAX_PAYLOAD, shim  # noqa: F401  (fixture)

# The random run's length; BERTH_SHIM_FUZZ_SECONDS makes it longer (or shorter).
FUZZ_SECONDS = float(os.environ.get("BERTH_SHIM_FUZZ_SECONDS", "20"))
MAX_CTL_LINE = 256  # shim/lib/protocol.hpp kMaxCtlLine


def ctl_raw(h, data: bytes, read=True, timeout=5.0) -> bytes:
    """Send raw bytes to ctl.sock; return what came back until the shim closed or went quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(h.dir / "ctl.sock"))
        with contextlib.suppress(OSError):
            s.sendall(data)
        if not read:
            return b""
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                out += chunk
        return out


def assert_serving(h) -> None:
    assert H.pid_alive(h.shim_pid), "the shim died"
    st = h.ctl("state")
    assert st["ok"] and st["status"] == "running" and st["pid"] == h.pid, st


def test_invalid_utf8_request_on_ctl(shim, bundle):
    """One invalid UTF-8 byte in a ctl request is an error reply, not the shim's end."""
    set_args(bundle, "sleep", "1000")
    h = shim.start(bundle)
    for request in (b"\xff\n", b"state \xc3\x28\n", b"resize \xff \xfe\n", b"\xed\xa0\x80bogus\n"):
        reply = ctl_raw(h, request)
        first = json.loads(reply.split(b"\n")[0])
        assert first["ok"] is False and first["error"], (request, reply)
        assert_serving(h)
    h.kill()
    assert h.exit_status()["signal"] == 9


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _ctl_attack(rng: random.Random, h) -> None:
    kind = rng.randrange(7)
    if kind == 0:  # random bytes with some newlines
        data = _random_bytes(rng, rng.randrange(1, 600))
        ctl_raw(h, data + (b"\n" if rng.random() < 0.7 else b""), read=rng.random() < 0.5)
    elif kind == 1:  # known verbs with invalid UTF-8 or garbage arguments
        verb = rng.choice([b"state", b"wait", b"reopen-log", b"resize", b"close-stdin", b""])
        args = b" ".join(rng.choice([b"\xff", b"\xc3", b"-1", b"99999999999999999999", b"1e9", b"\x00",
                                     _random_bytes(rng, 5)]) for _ in range(rng.randrange(4)))
        ctl_raw(h, verb + b" " + args + b"\n", read=rng.random() < 0.5)
    elif kind == 2:  # an oversized line, sometimes streamed without any newline
        size = rng.choice([MAX_CTL_LINE + 1, 4096, 1 << 20])
        ctl_raw(h, b"s" * size + (b"\n" if rng.random() < 0.5 else b""), read=rng.random() < 0.5)
    elif kind == 3:  # many lines in one write, valid and invalid mixed
        lines = [rng.choice([b"state", b"\xff\xfe", b"bogus", b"resize 1", _random_bytes(rng, 20).replace(b"\n", b"")])
                 for _ in range(rng.randrange(1, 50))]
        ctl_raw(h, b"\n".join(lines) + b"\n", read=rng.random() < 0.5)
    elif kind == 4:  # connect and vanish (abrupt close, with or without half a line)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(h.dir / "ctl.sock"))
            if rng.random() < 0.5:
                s.send(b"sta")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    elif kind == 5:  # a wait request whose client goes away
        ctl_raw(h, b"wait\n", read=False)
    else:  # NUL bytes and control characters
        ctl_raw(h, b"\x00\x01\x02\r\n\x7f\x1b[A\n", read=rng.random() < 0.5)


EXEC_JUNK = [b"{not json", b"", b"\xff\xfe", b"[]", b"null", b"42", b'"args"', b'{"args": 1}', b'{"args": []}',
             b'{"args": [1, 2]}', b'{"process": 5}', b'{"process": {"args": "x"}}', b'{"args": ["\xff"]}',
             b'{"args": ["sh"], "tty": "yes"}', b'{"args": ["sh"], "timeout": "soon"}',
             b'{"args": ["sh"], "timeout": -1}', b'{"args": ["sh"], "env": [1]}', b'{"args": ["sh"], "cwd": 7}',
             b'{"process": {"terminal": 3, "args": ["x"]}}', b'{"\xc3\x28": 1}', b'{"args": ["a"' + b" " * 40000]


def _attach_attack(rng: random.Random, h) -> None:
    path = str(h.dir / "attach.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(2)
    try:
        s.connect(path)
        kind = rng.randrange(5)
        frames = []
        if kind == 0:  # random frames, some larger than the shim takes
            for _ in range(rng.randrange(1, 6)):
                size = rng.choice([0, 1, 100, MAX_PAYLOAD, MAX_PAYLOAD + 1, MAX_PAYLOAD + 2, 60000])
                frames.append(_random_bytes(rng, min(size, 64)) + b"\0" * max(0, size - 64))
        elif kind == 1:  # exec requests that are not valid JSON or not valid requests
            frames.append(b"x" + rng.choice(EXEC_JUNK))
        elif kind == 2:  # attach, then odd frames in the session
            frames.append(b"a")
            for _ in range(rng.randrange(1, 8)):
                typ = rng.choice([b"w", b"c", b"z", b"a", b"x", b"\xff", b"q"])
                frames.append(typ + rng.choice([b"", b"\xff\xfe", b"1 1", b"-1 -1", b"70000 1", b"1",
                                                _random_bytes(rng, 30)]))
        elif kind == 3:  # empty frames and unknown first frames
            frames += [b"", rng.choice([b"z", b"\x00", b"\xff", b"s", b"q", b"o"]) + _random_bytes(rng, 10)]
        else:  # half a session, then gone without reading anything
            frames += [b"a", b"w\xff"]
        for f in frames:
            with contextlib.suppress(OSError):
                s.send(f)
        if rng.random() < 0.5:
            with contextlib.suppress(OSError):
                while s.recv(65536):
                    pass
    except OSError:
        pass
    finally:
        s.close()


@pytest.mark.slow
def test_random_input_on_both_sockets(shim, bundle):
    """A long random run (FUZZ_SECONDS, seed printed) of hostile clients on both sockets;
    every few rounds the shim must still answer `state` for the running container, and
    at the end the container's exit is recorded as usual."""
    set_args(bundle, "sleep", "1000")
    h = shim.start(bundle)
    seed = int(os.environ.get("BERTH_SHIM_FUZZ_SEED") or time.time_ns() % 1_000_000_007)
    print(f"\nshim fuzz seed {seed} (BERTH_SHIM_FUZZ_SEED={seed} repeats it)")
    rng = random.Random(seed)
    start = time.monotonic()
    rounds = 0
    # At least 50 rounds however loaded the machine is (some attacks wait out timeouts);
    # a shim that stalls every client still fails the bound of three times the run.
    while time.monotonic() < start + FUZZ_SECONDS or rounds < 50:
        if time.monotonic() > start + 3 * FUZZ_SECONDS:
            break
        (_ctl_attack if rng.random() < 0.5 else _attach_attack)(rng, h)
        rounds += 1
        if rounds % 25 == 0:
            assert_serving(h)
    assert rounds >= 50, f"only {rounds} rounds in {3 * FUZZ_SECONDS}s"
    assert_serving(h)
    h.kill()
    st = h.exit_status()
    assert st["signal"] == 9, st
    h.wait_shim_gone()
