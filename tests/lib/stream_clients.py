"""Real clients of a CRI stream server, shared by tests/cri/test_streaming.py, the
kubelet conformance run and bench/cri_stream.py: tests/cri/spdy_client (Go, on Debian's
github.com/docker/spdystream, the SPDY library under client-go), built at run time, and
Python's websocket-client (Debian's python3-websocket)."""

import os
import subprocess
import tempfile

import websocket

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_spdy_client(work):
    """Builds tests/cri/spdy_client into work/ (offline: GOPATH mode on Debian's Go packages)."""
    out = os.path.join(work, "spdy_client")
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOFLAGS="",
               GOCACHE=os.path.join(work, "gocache"))
    subprocess.run(["go", "build", "-o", out, "."], cwd=os.path.join(REPO, "tests", "cri", "spdy_client"), env=env,
                   check=True, timeout=600)
    return out


def run_spdy(client, *args, input=b"", timeout=120):
    """Runs spdy_client; returns (exit code, stdout, stderr, the error stream's payload)."""
    with tempfile.NamedTemporaryFile() as status:
        args = list(args) + (["-status", status.name] if args[0] == "exec" else [])
        p = subprocess.run([client, *args], input=input, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, open(status.name, "rb").read()


def ws_session(url, protocol, to_send=(), timeout=30, sslopt=None):
    """A WebSocket session with a channel protocol: sends the (channel, bytes) messages,
    collects everything per channel until the server closes; returns
    ({channel: bytes}, the messages in order)."""
    ws = websocket.create_connection(url, subprotocols=[protocol], timeout=timeout, sslopt=sslopt)
    assert ws.getsubprotocol() == protocol, ws.getsubprotocol()
    for ch, data in to_send:
        ws.send_binary(bytes([ch]) + data)
    got, order = {}, []
    while True:
        op, data = ws.recv_data(control_frame=False)
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        order.append(data)
        got[data[0]] = got.get(data[0], b"") + data[1:]
    ws.close()
    return got, order
