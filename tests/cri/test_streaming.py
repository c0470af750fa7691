"""Exec, Attach and PortForward through berthd's stream server, with real clients:
tests/cri/spdy_client (Go, on Debian's github.com/docker/spdystream, the SPDY library of
client-go) and Python's websocket-client. Hostile clients too: unknown and reused
tokens, garbage after the upgrade, clients that vanish mid-stream; the daemon keeps
serving and nothing is left behind (make_world's leak check)."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest
import websocket

import pod_lib
import stream_clients
from stream_clients import build_spdy_client, run_spdy


@pytest.fixture(scope="session")
def spdy_client(session_root):
    return build_spdy_client(session_root)


@pytest.fixture
def pod(world):
    pod_id, cfg = world.run_pod()
    return pod_id, cfg


def exec_url(world, cid, cmd, stdin=False, stdout=True, stderr=True, tty=False):
    return world.rt.Exec(world.pb2.ExecRequest(container_id=cid, cmd=cmd, stdin=stdin, stdout=stdout, stderr=stderr,
                                               tty=tty)).url


def ws_url(url):
    return "ws" + url[len("http"):]


def ws_session(url, protocol, to_send=(), timeout=30):
    return stream_clients.ws_session(ws_url(url), protocol, to_send, timeout)


def test_stream_server_starts_with_the_first_call_and_names_loopback(world, pod):
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    maps = open(f"/proc/{world.berthd.proc.pid}/maps").read()
    assert "libmicrohttpd" not in maps  # no stream, no HTTP library mapped
    url = exec_url(world, cid, ["true"])
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    assert "libmicrohttpd" in open(f"/proc/{world.berthd.proc.pid}/maps").read()


def test_exec_over_spdy_stdin_output_and_exit_status(world, pod, spdy_client):
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    url = exec_url(world, cid, ["sh", "-c", "cat; echo to-stderr >&2; exit 3"], stdin=True)
    data = b"line one\n" + bytes(range(256)) * 400  # 100 KiB: more than one frame each way
    rc, out, err, status = run_spdy(spdy_client, "exec", url, "-stdin", input=data)
    assert rc == 1, err
    assert out == data
    assert err == b"to-stderr\n"
    st = json.loads(status)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    # Success: the kubelet's exact bytes.
    rc, out, _, status = run_spdy(spdy_client, "exec", exec_url(world, cid, ["echo", "-n", "hello"]))
    assert (rc, out, status) == (0, b"hello", b'{"metadata":{},"status":"Success"}')


def test_exec_over_spdy_tty_resize_and_older_protocols(world, pod, spdy_client):
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    url = exec_url(world, cid, ["sh", "-c", "sleep 0.5; stty size; tty"], stdin=True, stderr=False, tty=True)
    rc, out, err, _ = run_spdy(spdy_client, "exec", url, "-stdin", "-tty", "-resize", "100x30")
    assert rc == 0, err
    lines = out.decode().split("\r\n")
    assert lines[0] == "30 100" and lines[1].startswith("/dev/pts/")
    # v2: no resize stream, the exit status as plain text; v1 likewise.
    for proto in ("v2.channel.k8s.io", "channel.k8s.io"):
        url = exec_url(world, cid, ["sh", "-c", "echo out; exit 4"])
        rc, out, err, status = run_spdy(spdy_client, "exec", url, "-protocol", proto)
        assert (rc, out) == (1, b"out\n"), (proto, err)
        assert status == b"command terminated with non-zero exit code: error executing command " \
                         b"[sh -c echo out; exit 4], exit code 4"


def test_attach_over_spdy_stdin_once(world, pod, spdy_client):
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sh"], stdin=True, stdin_once=True)
    url = world.rt.Attach(world.pb2.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)).url
    rc, out, err, status = run_spdy(spdy_client, "exec", url, "-stdin", input=b"echo hello; echo oops >&2\n")
    assert (rc, out, err) == (0, b"hello\n", b"oops\n"), err.decode(errors="replace")
    assert status == b'{"metadata":{},"status":"Success"}'
    world.wait_exited(cid)  # its stdin closed with ours: sh ended


def test_port_forward_over_spdy(world, spdy_client):
    pod_id, cfg = world.run_pod()
    world.run(pod_id, cfg, command=["sh", "-c", "mkdir /www; echo pong > /www/ping; exec httpd -f -p 8080 -h /www"])
    url = world.rt.PortForward(world.pb2.PortForwardRequest(pod_sandbox_id=pod_id)).url
    assert "/portforward/" in url
    request = b"GET /ping HTTP/1.0\r\n\r\n"
    deadline = time.monotonic() + 20  # httpd may still be starting
    while True:
        p = subprocess.run([spdy_client, "portforward", url, "8080", "3"], input=request, capture_output=True,
                           timeout=60)
        if p.stdout.count(b"pong\n") == 3 or time.monotonic() > deadline:
            break
        url = world.rt.PortForward(world.pb2.PortForwardRequest(pod_sandbox_id=pod_id)).url
        time.sleep(0.5)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(b"HTTP/1.") == 3 and p.stdout.count(b"pong\n") == 3
    assert b"error stream" not in p.stdout
    # Nothing listens on 8081: the pair's error stream says so, naming the pod.
    url = world.rt.PortForward(world.pb2.PortForwardRequest(pod_sandbox_id=pod_id)).url
    p = subprocess.run([spdy_client, "portforward", url, "8081"], input=request, capture_output=True, timeout=60)
    assert f"error stream: error forwarding port 8081 to pod {pod_id}, uid : failed to connect to localhost:8081"\
        .encode() in p.stdout


def test_exec_and_port_forward_over_websocket(world):
    pod_id, cfg = world.run_pod()
    cid = world.run(pod_id, cfg, command=["sh", "-c", "mkdir /www; echo pong > /www/ping; exec httpd -f -p 8080 -h /www"])
    # v5: stdin ends with the close signal (255, channel 0).
    url = exec_url(world, cid, ["sh", "-c", "cat; echo e >&2; exit 5"], stdin=True)
    got, order = ws_session(url, "v5.channel.k8s.io", [(0, b"via websocket\n"), (255, b"\x00")])
    assert order[0] == b"\x01"  # the kubelet's first message: empty, on stdout
    assert got[1] == b"via websocket\n" and got[2] == b"e\n"
    st = json.loads(got[3])
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"][0]["message"] == "5"
    # base64 framing (text messages), v4.
    url = exec_url(world, cid, ["echo", "b64"])
    ws = websocket.create_connection(ws_url(url), subprotocols=["v4.base64.channel.k8s.io"], timeout=30)
    texts = []
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        texts.append(data.decode())
    ws.close()
    assert texts[0] == "1" and "1YjY0Cg==" in texts  # "b64\n" on channel 1
    # Port-forward: ports from the request, data on channel 0, errors on 1, each opened
    # by the port in two little-endian bytes.
    deadline = time.monotonic() + 20
    while True:
        url = world.rt.PortForward(world.pb2.PortForwardRequest(pod_sandbox_id=pod_id, port=[8080])).url
        got, order = ws_session(url, "v4.channel.k8s.io", [(0, b"GET /ping HTTP/1.0\r\n\r\n")])
        if b"pong" in got.get(0, b"") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert order[:2] == [b"\x00\x90\x1f", b"\x01\x90\x1f"]
    assert got[0].startswith(b"\x90\x1fHTTP/1.") and got[0].endswith(b"pong\n")
    assert got[1] == b"\x90\x1f"  # no error


def test_requests_are_checked_and_tokens_used_once(world, pod, spdy_client):
    pb2 = world.pb2
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    for req, msg in ((pb2.ExecRequest(container_id=cid, cmd=["true"], tty=True, stderr=True),
                      "tty and stderr cannot both be true"),
                     (pb2.ExecRequest(container_id=cid, cmd=["true"]), "one of stdin, stdout, or stderr must be set"),
                     (pb2.ExecRequest(container_id=cid, stdout=True), "cmd: must not be empty")):
        with pytest.raises(grpc.RpcError) as e:
            world.rt.Exec(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and msg in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        world.rt.Attach(pb2.AttachRequest(container_id="nope", stdout=True))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    done = world.run(pod_id, cfg, command=["true"])
    world.wait_exited(done)
    with pytest.raises(grpc.RpcError) as e:
        world.rt.Exec(pb2.ExecRequest(container_id=done, cmd=["true"], stdout=True))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    url = exec_url(world, cid, ["true"])
    base = url.rsplit("/", 2)[0]
    # Unknown token, a token of another kind, a request that does not upgrade: refused.
    for bad in (base + "/exec/0123456789abcdef", url.replace("/exec/", "/attach/")):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(bad, method="POST"), timeout=10)
        assert e.value.code == 404
    rc, _, err, _ = run_spdy(spdy_client, "exec", url)  # the token was used by the wrong-kind request
    assert rc == 2 and b"404" in err
    url = exec_url(world, cid, ["echo", "once"])
    assert run_spdy(spdy_client, "exec", url)[:2] == (0, b"once\n")
    rc, _, err, _ = run_spdy(spdy_client, "exec", url)
    assert rc == 2 and b"404 page not found" in err
    url = exec_url(world, cid, ["true"])
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10)
    assert e.value.code == 400
    # No protocol in common: 403 with the server's list.
    url = exec_url(world, cid, ["true"])
    rc, _, err, _ = run_spdy(spdy_client, "exec", url, "-protocol", "v9.channel.k8s.io")
    assert rc == 2 and b"403" in err


def processes_in(world, cid):
    code, out, _ = world.exec(cid, ["ps", "-o", "pid,args"])
    assert code == 0
    return out


def fds_and_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return len(os.listdir(f"/proc/{pid}/fd")), threads


def test_hostile_and_vanishing_clients_leave_nothing(world, pod, spdy_client):
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    # The baseline with the stream server running and one session done.
    assert run_spdy(spdy_client, "exec", exec_url(world, cid, ["true"]))[0] == 0
    time.sleep(0.5)
    baseline = fds_and_threads(world.berthd.proc.pid)
    # Garbage instead of SPDY frames after a valid upgrade: the session ends.
    url = exec_url(world, cid, ["sleep", "997"])
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
              "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 101")
    s.sendall(b"\x80\x03\x00\x01\x00\xff\xff\xff" + os.urandom(512))  # a SYN_STREAM claiming 16 MiB
    s.settimeout(10)
    rest = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    s.close()
    # A client killed mid-exec (a dropped kubectl): its process does not run on.
    url = exec_url(world, cid, ["sleep", "998"], stdin=True)
    p = subprocess.Popen([spdy_client, "exec", url, "-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    pod_lib.wait_for(lambda: "sleep 998" in processes_in(world, cid), what="the exec'd sleep")
    p.send_signal(signal.SIGKILL)
    p.wait()
    pod_lib.wait_for(lambda: "sleep 998" not in processes_in(world, cid), what="the exec'd sleep killed")
    assert "sleep 997" not in processes_in(world, cid)
    # A WebSocket client gone the same way.
    url = exec_url(world, cid, ["sleep", "999"], stdin=True)
    ws = websocket.create_connection(ws_url(url), subprotocols=["v4.channel.k8s.io"], timeout=10)
    pod_lib.wait_for(lambda: "sleep 999" in processes_in(world, cid), what="the exec'd sleep")
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    pod_lib.wait_for(lambda: "sleep 999" not in processes_in(world, cid), what="the exec'd sleep killed")
    # The daemon serves on, with no fd or thread left of those sessions.
    rc, out, _, _ = run_spdy(spdy_client, "exec", exec_url(world, cid, ["echo", "still serving"]))
    assert (rc, out) == (0, b"still serving\n")
    pod_lib.wait_for(lambda: fds_and_threads(world.berthd.proc.pid) == baseline, timeout=10,
                     what=f"berthd's fds and threads back to {baseline}")


def test_tls_stream_server(make_world, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    world = make_world(extra_config=f'[stream]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    pod_id, cfg = world.run_pod()
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    url = exec_url(world, cid, ["echo", "over tls"])
    assert url.startswith("https://127.0.0.1:")
    ws = websocket.create_connection("wss" + url[len("https"):], subprotocols=["v4.channel.k8s.io"], timeout=30,
                                     sslopt={"ca_certs": str(cert), "check_hostname": False})
    got = b""
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        if data[:1] == b"\x01":
            got += data[1:]
    ws.close()
    assert got == b"over tls\n"


def test_bad_websocket_handshakes_and_port_forward_with_a_refused_port(world, pod):
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sh", "-c", "mkdir /www; echo pong > /www/ping; exec httpd -f -p 8080 -h /www"])
    # A key that is not base64 of 16 bytes: 400, and berthd serves on.
    url = exec_url(world, cid, ["true"])
    host, port = url.split("/")[2].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"GET /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 400")
    s.close()
    # Two ports, the first refused: its pair ends with the kubelet's error text, the second
    # serves, and input for the ended one is dropped.
    pod_lib.wait_for(lambda: "pong" in world.exec(cid, ["wget", "-qO-", "http://127.0.0.1:8080/ping"])[1],
                     what="httpd")
    url = world.rt.PortForward(world.pb2.PortForwardRequest(pod_sandbox_id=pod_id, port=[8081, 8080])).url
    ws = websocket.create_connection(ws_url(url), subprotocols=["v4.channel.k8s.io"], timeout=30)
    got = {}

    def receive_until(pred):
        while not pred():
            op, data = ws.recv_data()
            assert op != websocket.ABNF.OPCODE_CLOSE
            got[data[0]] = got.get(data[0], b"") + data[1:]
    receive_until(lambda: b"failed to connect to localhost:8081" in got.get(1, b""))
    time.sleep(1.5)  # past the ended pair's grace: it is gone from the session
    ws.send_binary(b"\x00late input for the refused port")
    ws.send_binary(b"\x02GET /ping HTTP/1.0\r\n\r\n")
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        got[data[0]] = got.get(data[0], b"") + data[1:]
    ws.close()
    assert got[2].startswith(b"\x90\x1fHTTP/1.") and got[2].endswith(b"pong\n")
    assert got[1].startswith(b"\x91\x1ferror forwarding port 8081 to pod " + pod_id.encode())


def test_sessions_end_with_the_pod_and_with_berthd(world, spdy_client):
    pod_id, cfg = world.run_pod()
    sh = world.run(pod_id, cfg, command=["sh"], stdin=True, stdin_once=True)
    # A stdout-only attach that ends leaves the StdinOnce container's stdin open.
    url = world.rt.Attach(world.pb2.AttachRequest(container_id=sh, stdout=True)).url
    p = subprocess.Popen([spdy_client, "exec", url, "-stderr=false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    p.kill()
    p.wait()
    time.sleep(1)
    assert world.state(sh) == world.pb2.CONTAINER_RUNNING
    # berthd stopping mid-exec: the client is told of a failure, not a success.
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    url = exec_url(world, cid, ["sleep", "995"])
    p = subprocess.Popen([spdy_client, "exec", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pod_lib.wait_for(lambda: "sleep 995" in processes_in(world, cid), what="the exec'd sleep")
    world.restart()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1 and b"berthd is shutting down" in err, err
    # A port-forward session with a live connection ends when its pod stops (and its
    # network namespace is not held: make_world's leak check).
    web = world.run(pod_id, cfg, command=["httpd", "-f", "-p", "8080", "-h", "/etc"])
    pod_lib.wait_for(lambda: world.exec(web, ["wget", "-qO-", "http://127.0.0.1:8080/hostname"])[0] == 0,
                     what="httpd")
    url = world.rt.PortForward(world.pb2.PortForwardRequest(pod_sandbox_id=pod_id, port=[8080])).url
    ws = websocket.create_connection(ws_url(url), subprotocols=["v4.channel.k8s.io"], timeout=30)
    assert ws.recv_data()[1] == b"\x00\x90\x1f"
    world.stop_pod(pod_id)
    while ws.recv_data()[0] != websocket.ABNF.OPCODE_CLOSE:
        pass
    ws.close()


def test_exec_output_survives_a_slow_client(world, pod, spdy_client):
    """20 MiB written in big chunks through a client that stops reading for a while: every
    buffer on the way fills (the client's pipe, the sockets, berthd's 1 MiB, the shim's),
    the exec's output waits, and not a byte is lost or reordered."""
    pod_id, cfg = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    code, _, err = world.exec(cid, ["sh", "-c", "head -c 20971520 /dev/urandom > /tmp/blob"], timeout=60)
    assert code == 0, err
    code, md5, _ = world.exec(cid, ["md5sum", "/tmp/blob"])
    url = exec_url(world, cid, ["dd", "if=/tmp/blob", "bs=1048576"], stderr=False)
    p = subprocess.Popen([spdy_client, "exec", url, "-stderr=false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert len(out) == 20971520 and hashlib.md5(out).hexdigest() == md5.split()[0]
