"""berthd's Prometheus endpoint ([metrics] address) and its grpc.health.v1 service, on a
real berthd: known RPCs are made (pulls from the local registry, pods, containers, a
failing call), /metrics is scraped and parsed strictly (tests/lib/prom_text.py), and
every figure is checked against what the test did. Off by default."""

import contextlib
import json
import os
import re
import signal
import time
import urllib.request

import grpc
import pytest

import oci_image
import pod_lib
import prom_text
from conftest import run_berthd

RT = "runtime.v1.RuntimeService"
IMG = "runtime.v1.ImageService"


def metrics_port(berthd):
    m = re.search(r'msg="serving metrics".*port=(\d+)', berthd.log())
    assert m, f"no 'serving metrics' line in berthd's log:\n{berthd.log()}"
    return int(m.group(1))


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return prom_text.parse(r.read().decode())


def handled(fams, service, method, code):
    return prom_text.value(fams, "grpc_server_handled_total", 0, grpc_type="unary", grpc_service=service,
                           grpc_method=method, grpc_code=code)


def health_check(socket, service=""):
    """grpc.health.v1.Health/Check by hand: HealthCheckRequest{service = 1}; the reply's
    field 1 is the status enum (1 SERVING, 2 NOT_SERVING)."""
    name = service.encode()
    req = (b"\x0a" + bytes([len(name)]) + name) if name else b""
    with grpc.insecure_channel("unix://" + socket) as ch:
        call = ch.unary_unary("/grpc.health.v1.Health/Check")
        resp = call(req, timeout=10)
    assert len(resp) == 2 and resp[0] == 0x08, resp
    return {1: "SERVING", 2: "NOT_SERVING"}[resp[1]]


@pytest.fixture
def metrics_world(make_world):
    return make_world(extra_config='[metrics]\naddress = "127.0.0.1:0"\n')


def test_metrics_match_what_was_done(metrics_world, pod_registry):
    w = metrics_world
    port = metrics_port(w.berthd)
    pb2 = w.pb2
    # A second image with two layers, so a pull downloads known bytes.
    image = oci_image.build_image("multilayer")
    oci_image.push(image, pod_registry.addr, "library/metrics-multi:latest")
    manifest = json.loads(image.manifest)
    blob_bytes = manifest["config"]["size"] + sum(l["size"] for l in manifest["layers"])

    before = scrape(port)
    w.client.pull("metrics-multi")                       # downloads every blob
    w.client.pull("metrics-multi")                       # nothing to download
    with pytest.raises(grpc.RpcError) as e:
        w.client.pull("no-such-image-here")              # NOT_FOUND from the registry
    failed_pull_code = e.value.code()

    pods = [w.run_pod() for _ in range(3)]
    (p1, c1), (p2, c2), (p3, c3) = pods
    running = [w.run(p1, c1, command=["sleep", "1000"]), w.run(p2, c2, command=["sleep", "1000"])]
    created = w.create(p1, c1, command=["sleep", "1000"])
    exited = w.run(p2, c2, command=["true"])
    w.wait_exited(exited)
    w.stop_pod(p3)
    with pytest.raises(grpc.RpcError) as e:
        w.status("0" * 64)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # Shims go away shortly after their container exits.
    pod_lib.wait_for(lambda: prom_text.value(scrape(port), "berthd_shims") == 2, what="2 live shims")
    after = scrape(port)

    def delta(name, **labels):
        return prom_text.value(after, name, 0, **labels) - prom_text.value(before, name, 0, **labels)

    # Pulls: 2 succeeded, 1 failed, the bytes of one download, one duration per success.
    assert delta("berthd_image_pulls_total", result="success") == 2
    assert delta("berthd_image_pulls_total", result="failure") == 1
    assert delta("berthd_image_pull_bytes_total") == blob_bytes
    assert delta("berthd_image_pull_duration_seconds_count") == 2

    # gRPC calls by method and code, and their latency histograms.
    code = {grpc.StatusCode.NOT_FOUND: "NotFound", grpc.StatusCode.UNKNOWN: "Unknown"}[failed_pull_code]
    assert handled(after, IMG, "PullImage", "OK") - handled(before, IMG, "PullImage", "OK") == 2
    assert handled(after, IMG, "PullImage", code) - handled(before, IMG, "PullImage", code) == 1
    assert handled(after, RT, "RunPodSandbox", "OK") - handled(before, RT, "RunPodSandbox", "OK") == 3
    assert handled(after, RT, "CreateContainer", "OK") - handled(before, RT, "CreateContainer", "OK") == 4
    assert handled(after, RT, "StartContainer", "OK") - handled(before, RT, "StartContainer", "OK") == 3
    assert handled(after, RT, "StopPodSandbox", "OK") - handled(before, RT, "StopPodSandbox", "OK") == 1
    assert handled(after, RT, "ContainerStatus", "NotFound") - handled(before, RT, "ContainerStatus", "NotFound") == 1
    lat = dict(grpc_type="unary", grpc_service=RT, grpc_method="RunPodSandbox")
    assert delta("grpc_server_handling_seconds_count", **lat) == 3
    assert delta("grpc_server_handling_seconds_sum", **lat) > 0
    started = dict(grpc_type="unary", grpc_service=RT, grpc_method="CreateContainer")
    assert delta("grpc_server_started_total", **started) == 4

    # State, computed at scrape time from berthd's index.
    assert prom_text.value(after, "berthd_pod_sandboxes", state="ready") == 2
    assert prom_text.value(after, "berthd_pod_sandboxes", state="notready") == 1
    assert prom_text.value(after, "berthd_containers", state="running") == 2
    assert prom_text.value(after, "berthd_containers", state="created") == 1
    assert prom_text.value(after, "berthd_containers", state="exited") == 1
    assert prom_text.value(after, "berthd_shims") == 2

    # CNI: three ADDs, one DEL (the stopped pod).
    assert delta("berthd_cni_operation_duration_seconds_count", operation="ADD") == 3
    assert delta("berthd_cni_operation_duration_seconds_count", operation="DEL") == 1
    assert delta("berthd_cni_operation_errors_total", operation="ADD") == 0

    # Snapshots: the filesystem's figures and the bytes used (two images, four containers).
    assert prom_text.value(after, "berthd_snapshots_used_bytes") > 0
    fs = [v for (n, _), v in after["berthd_snapshots_filesystem_size_bytes"]["samples"].items()]
    assert len(fs) == 1 and fs[0] > 0

    # The process collector describes berthd.
    pid = w.berthd.proc.pid
    assert prom_text.value(after, "process_open_fds") == pytest.approx(len(os.listdir(f"/proc/{pid}/fd")), abs=8)
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert prom_text.value(after, "process_resident_memory_bytes") == pytest.approx(rss, rel=0.5)


def test_metrics_endpoint_rejects_other_paths_and_methods(metrics_world):
    port = metrics_port(metrics_world.berthd)
    for path, method, status in (("/", "GET", 404), ("/metrics/x", "GET", 404), ("/metrics", "POST", 405)):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == status
    assert scrape(port)["berthd_containers"]["type"] == "gauge"  # still serving


def tcp_listening_inodes():
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
    return inodes


def test_metrics_off_by_default_and_health_serving(make_berthd):
    b = make_berthd().start()
    assert "serving metrics" not in b.log()
    listening = tcp_listening_inodes()
    fds = [os.readlink(f"/proc/{b.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{b.proc.pid}/fd")]
    socks = {f[len("socket:["):-1] for f in fds if f.startswith("socket:[")}
    assert not (socks & listening), "berthd listens on TCP without [metrics]"
    for service in ("", RT, IMG):
        assert health_check(b.socket, service) == "SERVING"
    with pytest.raises(grpc.RpcError) as e:
        health_check(b.socket, "no.such.Service")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert b.stop() == 0


@pytest.mark.parametrize("address,problem", [
    ("localhost:1338", "not an IP address"),
    ("127.0.0.1", "expected host:port"),
    ("127.0.0.1:99999", "not a number up to 65535"),
])
def test_bad_metrics_address_is_refused(make_berthd, address, problem):
    b = make_berthd(f'[metrics]\naddress = "{address}"\n')
    r = run_berthd(["--config", b.config_path])
    assert r.returncode != 0
    assert "metrics.address" in r.stderr and problem in r.stderr, r.stderr


def test_health_watch_turns_not_serving_at_shutdown(make_berthd):
    b = make_berthd().start()
    with grpc.insecure_channel("unix://" + b.socket) as ch:
        stream = ch.unary_stream("/grpc.health.v1.Health/Watch")(b"", timeout=30)
        assert next(stream) == b"\x08\x01"  # SERVING
        b.proc.send_signal(signal.SIGTERM)
        seen = []
        with contextlib.suppress(grpc.RpcError):  # the stream ends with the server
            for msg in stream:
                seen.append(msg)
        assert b"\x08\x02" in seen, seen  # NOT_SERVING
    assert b.proc.wait(timeout=30) == 0


def test_streaming_calls_are_counted_by_type(metrics_world):
    w = metrics_world
    port = metrics_port(w.berthd)
    before = scrape(port)
    events = w.rt.GetContainerEvents(w.pb2.GetEventsRequest(), timeout=0.5)
    with pytest.raises(grpc.RpcError) as e:
        for _ in events:
            pass
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    labels = dict(grpc_type="server_stream", grpc_service=RT, grpc_method="GetContainerEvents")
    pod_lib.wait_for(lambda: prom_text.value(scrape(port), "grpc_server_handling_seconds_count", 0, **labels)
                     - prom_text.value(before, "grpc_server_handling_seconds_count", 0, **labels) == 1,
                     what="the ended event stream counted")
    assert prom_text.value(scrape(port), "grpc_server_started_total", **labels) >= 1
