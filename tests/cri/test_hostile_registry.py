"""berthd against a hostile registry: stack depth, unbounded input, stalls, cancelled
clients, protocols and sizes a registry must not choose (the hardening issue "berthd
against a hostile registry"). The registry is cri/image/tests/hostile_registry.py, a small
HTTP server on 127.0.0.1 that serves what each test tells it to; the victim's images come
from Debian's docker-registry (tests/lib/registry.py)."""

import json
import os
import socket
import sqlite3
import sys
import threading
import time

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "cri", "image", "tests"))

import oci_image  # noqa: E402
from hostile_registry import HostileRegistry, busybox_layer, sha256  # noqa: E402
from registry import Registry  # noqa: E402

MAX_DETAILS = 4096  # what a status message may be at most (a C-core client refuses > 8 KiB)


def nested(depth):
    return b"[" * depth + b"]" * depth


def assert_alive(b):
    assert b.proc.poll() is None, f"berthd died (exit {b.proc.returncode}):\n{b.log()[-3000:]}"
    with b.client() as c:
        c.version(timeout=10)


def status_field(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def pull_error(c, ref, **kw):
    with pytest.raises(grpc.RpcError) as e:
        c.pull(ref, **kw)
    return e.value


@pytest.fixture
def hostile():
    with HostileRegistry() as reg:
        yield reg


@pytest.fixture(scope="module")
def victim_registry():
    """Debian's docker-registry with busybox as library/busybox:latest (docker.io's mirror)."""
    with Registry() as reg:
        img = oci_image.push(oci_image.build_image("busybox"), reg.addr, "library/busybox:latest")
        yield reg, img


# ---- 1. stack exhaustion ------------------------------------------------------------

def test_config_with_diff_ids_nested_200000_deep_is_refused(make_berthd, hostile):
    d, data, diff = busybox_layer()
    config = (b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":['
              + nested(200000) + b']}}')
    hostile.add_image("deep/ids", "1", [(d, data, diff)], config=config)
    b = make_berthd().start()
    with b.client() as c:
        err = pull_error(c, f"{hostile.addr}/deep/ids:1")
        assert "nested deeper than" in err.details(), err.details()
        assert len(err.details()) < MAX_DETAILS
    assert_alive(b)


def test_config_with_a_deeply_nested_extra_field_is_refused_and_status_survives(make_berthd, hostile):
    d, data, diff = busybox_layer()
    hostile.add_image("deep/extra", "1", [(d, data, diff)], config_extra=nested(300000))
    b = make_berthd().start()
    ref = f"{hostile.addr}/deep/extra:1"
    with b.client() as c:
        err = pull_error(c, ref)
        assert "nested deeper than" in err.details(), err.details()
        # Whatever the pull did, status and list keep working.
        c.status(ref, verbose=True)
        c.list()
    assert_alive(b)


def test_a_stored_deep_config_does_not_take_down_status_or_list_across_restarts(make_berthd, hostile):
    """An image pulled by an older berthd may hold a config of any depth in meta.db."""
    d, data, diff = busybox_layer()
    s = hostile.add_image("plain/img", "1", [(d, data, diff)])
    b = make_berthd().start()
    ref = f"{hostile.addr}/plain/img:1"
    with b.client() as c:
        assert c.pull(ref) == s["config"]
    b.stop()
    deep = (b'{"architecture":"amd64","os":"linux","config":{"User":"1000"},"extra":'
            + nested(1000000) + b',"rootfs":{"type":"layers","diff_ids":["' + diff.encode() + b'"]}}')
    db = sqlite3.connect(os.path.join(b.root, "meta.db"))
    cols = [r[1] for r in db.execute("PRAGMA table_info(images)")]
    db.execute("UPDATE images SET config_json = ?", (deep.decode(),))
    if "user" in cols:
        db.execute("UPDATE images SET user = NULL")  # as a store of an older berthd has it
    db.commit()
    db.close()
    for _ in range(2):  # and again after a restart
        b.start()
        with b.client() as c:
            assert [i.id for i in c.list()] == [s["config"]]
            image, info = c.status(ref, verbose=True)
            assert image.id == s["config"]
            assert json.loads(info["info"])["imageSpec"] == {}
            assert json.loads(info["info"])["chainID"] == diff
        assert_alive(b)
        b.stop()


def test_a_30000_character_token_realm_is_an_error_not_a_crash(make_berthd, hostile):
    realm = "http://127.0.0.1:1/" + "a" * 30000
    hostile.route("/v2/auth/img/manifests/1", status=401, body=b"{}",
                  headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s",scope="repository:auth/img:pull"'})
    b = make_berthd().start()
    with b.client() as c:
        err = pull_error(c, f"{hostile.addr}/auth/img:1")
        # Refused either as a challenge over the header cap or as a realm too long.
        assert "WWW-Authenticate challenge longer" in err.details() or "token realm" in err.details(), \
            err.details()
        assert len(err.details()) < MAX_DETAILS
    assert_alive(b)


# ---- 2. one registry stalls the node -------------------------------------------------

def test_a_slow_registry_serving_the_victims_layer_digest_does_not_stall_the_victim(
        make_berthd, hostile, victim_registry):
    victim, img = victim_registry
    d, data, diff = busybox_layer()
    assert d == img["layers"][0], "the attacker names the victim's layer digest"
    # Three more layers that never finish either: every download slot of the attacker's pull.
    extra = []
    for i in range(3):
        blob = os.urandom(4096)
        extra.append((sha256(blob), blob, sha256(blob)))
    hostile.add_image("evil/img", "1", [(d, data, diff)] + extra,
                      blob_routes={x[0]: {"rate": 1} for x in [(d, data, diff)] + extra})
    b = make_berthd(f'[registry."docker.io"]\nmirrors = ["{victim.url}"]\n').start()
    with b.client() as attacker, b.client() as c:
        fut = attacker.pull_future(f"{hostile.addr}/evil/img:1", timeout=120)
        deadline = time.monotonic() + 30
        while hostile.starts(f"/v2/evil/img/blobs/{d}") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hostile.starts(f"/v2/evil/img/blobs/{d}") == 1, "the attacker's download is under way"
        t0 = time.monotonic()
        assert c.pull("busybox", timeout=60) == img["image_id"]
        assert time.monotonic() - t0 < 30
        assert not fut.done(), "the attacker's pull is still trickling"
        fut.cancel()
    assert_alive(b)


def test_a_pull_stops_when_its_client_goes_away(make_berthd, hostile, pb2):
    d, data, diff = busybox_layer()
    hostile.add_image("slow/img", "1", [(d, data, diff)], blob_routes={d: {"rate": 1}})
    b = make_berthd().start()
    path = f"/v2/slow/img/blobs/{d}"
    with b.client() as c:
        req = pb2.PullImageRequest(image=pb2.ImageSpec(image=f"{hostile.addr}/slow/img:1"))
        with pytest.raises(grpc.RpcError) as e:
            c.images.PullImage(req, timeout=3)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gone = time.monotonic()
        # berthd drops the blob's connection soon after: the server logs the broken transfer.
        while not hostile.entries(path) and time.monotonic() - gone < 15:
            time.sleep(0.1)
        entries = hostile.entries(path)
        assert entries and not entries[0]["complete"], "berthd still downloads for a client that left"
        assert time.monotonic() - gone < 10
        deadline = time.monotonic() + 10
        while "pull cancelled" not in b.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "pull cancelled" in b.log()
        assert c.list() == []
    assert_alive(b)
    # Nothing partial is left in the store.
    leftovers = [f for _, _, fs in os.walk(os.path.join(b.root, "content", "ingest")) for f in fs]
    assert leftovers == []


# ---- 3. every request through one configured handle -----------------------------------

def test_a_gopher_token_realm_reaches_nothing(make_berthd, hostile, pb2):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    received = []
    stop = threading.Event()

    def accept():
        end = time.monotonic() + 20
        while time.monotonic() < end and not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(1)
            try:
                received.append(conn.recv(4096))
            except OSError:
                received.append(b"")
            conn.close()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    port = listener.getsockname()[1]
    realm = f"gopher://127.0.0.1:{port}/_SET%20pwned%201%0D%0A"
    hostile.route("/v2/auth/img/manifests/1", status=401, body=b"{}",
                  headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
    b = make_berthd().start()
    with b.client() as c:
        req = pb2.PullImageRequest(image=pb2.ImageSpec(image=f"{hostile.addr}/auth/img:1"),
                                   auth=pb2.AuthConfig(identity_token="refresh-token"))
        with pytest.raises(grpc.RpcError) as e:
            c.images.PullImage(req, timeout=60)
    time.sleep(1)
    stop.set()
    t.join()  # before the close: accept() on a closed socket raises in the thread
    listener.close()
    assert received == [], f"berthd sent {received!r} to a local TCP service"
    assert "http or https" in e.value.details(), e.value.details()
    assert_alive(b)


def test_a_150_MB_token_answer_is_refused_early(make_berthd, hostile, pb2):
    hostile.route("/token", size=150 << 20, fill=b"a", headers={"Content-Type": "application/json"})
    hostile.route("/v2/auth/img/manifests/1", status=401, body=b"{}",
                  headers={"WWW-Authenticate": f'Bearer realm="{hostile.url}/token",service="s"'})
    b = make_berthd().start()
    with b.client() as c:
        req = pb2.PullImageRequest(image=pb2.ImageSpec(image=f"{hostile.addr}/auth/img:1"),
                                   auth=pb2.AuthConfig(identity_token="refresh-token"))
        with pytest.raises(grpc.RpcError) as e:
            c.images.PullImage(req, timeout=120)
    peak = status_field(b.proc.pid, "VmHWM")
    assert peak < 100 << 20, f"berthd grew to {peak >> 20} MiB"
    assert "larger than" in e.value.details(), e.value.details()
    assert_alive(b)


# ---- 4. bounded messages, bounded listings ---------------------------------------------

def test_errors_quote_only_bounded_excerpts(make_berthd, hostile):
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "x" * 200000}).encode()
    hostile.route("/v2/long/img/manifests/1", body=manifest)  # no Content-Type: the body's mediaType
    b = make_berthd().start()
    with b.client() as c:
        err = pull_error(c, f"{hostile.addr}/long/img:1")
        assert err.code() == grpc.StatusCode.UNKNOWN, (err.code(), err.details()[:200])
        assert "unsupported manifest media type" in err.details()
        assert len(err.details()) < MAX_DETAILS
        err = pull_error(c, "a" * 1000000)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details()[:200])
        assert len(err.details()) < MAX_DETAILS
        with pytest.raises(grpc.RpcError) as e:
            c.status("Z" * 1000000)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(e.value.details()) < MAX_DETAILS
    assert_alive(b)


def test_listing_images_does_not_parse_their_configs(make_berthd, hostile):
    d, data, diff = busybox_layer()
    # A legal 7.6 MB config: a long history of tiny entries (a big DOM when parsed).
    history = b",".join([b'{"created_by":"x"}'] * 400000)
    config = (b'{"architecture":"amd64","os":"linux","config":{"User":"1000:1000"},"history":[' + history
              + b'],"rootfs":{"type":"layers","diff_ids":["' + diff.encode() + b'"]}}')
    s = hostile.add_image("fat/img", "1", [(d, data, diff)], config=config)
    b = make_berthd().start()
    with b.client() as c:
        assert c.pull(f"{hostile.addr}/fat/img:1") == s["config"]
        time.sleep(0.5)
        with open(f"/proc/{b.proc.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        base = status_field(b.proc.pid, "VmRSS")
        for _ in range(5):
            [image] = c.list()
            assert image.uid.value == 1000
        assert c.status(s["config"])[0].uid.value == 1000
        grown = status_field(b.proc.pid, "VmHWM") - base
    assert grown < 24 << 20, f"listing one image cost {grown >> 20} MiB"
    assert_alive(b)
