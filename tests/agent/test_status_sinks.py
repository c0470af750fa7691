"""Status sinks (docs/agent.md "Status sinks"): berthlet reports node status, pod status
snapshots, deletions and events to a file sink and to an http sink with two URLs served by
small HTTP servers on loopback in this test. Endpoints go down and come back while pods
are created, complete and are deleted; in the end the directory and the receivers hold
exactly what berthlet's /pods says. A slow receiver does not delay pods; a 400 is dropped
after one try; a full disk for the file sink is one log line and recovers."""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import agent_lib as L
from agent_lib import SLEEPER, Receiver, container, pod_manifest, running
from conftest import ROOT


def write_config(path: Path, sinks: str, extra=""):
    path.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                    "nodeStatusUpdateFrequency: 1s\n" + extra + "statusSinks:\n" + sinks)
    return path


def file_and_hook_config(tmp_path, urls, hook_keys=""):
    """A config with a file sink "local" (its directory is returned) and an http sink "hook"."""
    status_dir = tmp_path / "status"
    return status_dir, write_config(tmp_path / "config.yaml", f"- name: local\n  type: file\n  directory: {status_dir}\n"
                                    f"- name: hook\n  type: http\n  urls: [{', '.join(urls)}]\n" + hook_keys)


def receiver_and_config(tmp_path, name, mode, keys):
    """A webhook receiver in `mode` and a config with one http sink to it."""
    rx = Receiver()
    port = L.free_port()
    rx.start(port, mode=mode)
    cfg = write_config(tmp_path / "config.yaml", f"- name: {name}\n  type: http\n"
                       f"  urls: [http://127.0.0.1:{port}/]\n" + "".join(f"  {k}\n" for k in keys))
    return rx, cfg


def check_node(node):
    st = node["status"]
    assert int(st["capacity"]["cpu"]) >= 1
    assert st["capacity"]["memory"].endswith("Ki") and int(st["capacity"]["memory"][:-2]) > 100 * 1024
    assert int(st["capacity"]["pods"]) == 110
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": conds["DiskPressure"],
                     "PIDPressure": "False"}, conds
    assert st["nodeInfo"]["containerRuntimeVersion"].count("://") == 1
    assert st["nodeInfo"]["kubeletVersion"].startswith("berthlet/")
    assert node["metadata"]["name"] == L.NODE


def test_file_and_http_sinks_converge_through_outages(berthlet_factory, tmp_path):
    rx = Receiver()
    p1, p2 = L.free_port(), L.free_port()
    rx.start(p2)  # the first URL is down at start
    token = tmp_path / "hook.token"
    token.write_text("s3cret\n")
    status_dir, cfg = file_and_hook_config(tmp_path, [f"http://127.0.0.1:{p1}/status", f"http://127.0.0.1:{p2}/status"],
                                           f"""  timeout: 2s
  initialBackoff: 200ms
  maxBackoff: 1s
  bearerTokenFile: {token}
""")
    b = berthlet_factory()
    try:
        b.start("--config", str(cfg))
        b.write("a.yaml", pod_manifest("a", [container("c", SLEEPER)]))
        b.write("once.yaml", pod_manifest("once", [container("c", "exit 0")], restartPolicy="Never"))
        b.write("gone.yaml", pod_manifest("gone", [container("c", SLEEPER)]))
        b.write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: [x]}\n")
        b.write("nopull.yaml", pod_manifest("nopull", [container("c", SLEEPER, image="no-such-image:1")]))
        b.wait_pod("a", lambda p: running(p, "c"))
        b.wait_pod("gone", lambda p: running(p, "c"))
        b.wait_pod("once", lambda p: p["status"]["phase"] == "Succeeded")
        gone_uid = b.pod("gone")["metadata"]["uid"]
        # The second receiver dies, the first comes up: delivery fails over to it.
        rx.stop(p2)
        b.remove("gone.yaml")
        b.write("late.yaml", pod_manifest("late", [container("c", SLEEPER)]))
        time.sleep(1)
        rx.start(p1)
        b.wait_pod("late", lambda p: running(p, "c"))
        L.wait_for(lambda: b.pod("gone") is None, timeout=60, what="pod gone removed")

        def converged():
            pods = {p["metadata"]["uid"]: p for p in b.pods()}
            files = {f.name: json.loads(f.read_text()) for f in (status_dir / "pods").iterdir()}
            want_files = {f'{p["metadata"]["namespace"]}_{p["metadata"]["name"]}.json': p for p in pods.values()}
            if files != want_files:
                return None
            latest, node = rx.latest()
            if {u: v for u, v in latest.items() if v["kind"] == "pod"} != \
                    {u: {"kind": "pod", "object": p} for u, p in pods.items()}:
                return None
            if latest.get(gone_uid, {}).get("kind") != "podDeleted" or node is None:
                return None
            return latest
        L.wait_for(converged, timeout=30, what="file dir and receivers to match /pods")
        assert {p["status"]["phase"] for p in b.pods()} == {"Running", "Succeeded", "Pending"}  # nopull waits
        assert {r.port for r in rx.requests} == {p1, p2}
        assert all(r.auth == "Bearer s3cret" for r in rx.requests)
        check_node(json.loads((status_dir / "node.json").read_text()))
        check_node(rx.latest()[1])
        assert not list(status_dir.rglob(".*.tmp")), "a temp file was left"
        assert "status sink hook: delivering again" in b.log()
        # Events: the manifest that does not load, the image that cannot be pulled.
        with rx.lock:
            events = [r.body["object"] for r in rx.requests if r.body["kind"] == "event"]
        reasons = {(e["involvedObject"]["kind"], e["reason"]) for e in events}
        assert ("Node", "FailedManifest") in reasons and ("Pod", "Failed") in reasons, reasons
        assert all(e["source"] == {"component": "berthlet", "host": L.NODE} for e in events)
        metrics = b.get("/metrics")
        for line in ('berthlet_status_sink_deliveries_total{sink="hook",kind="pod",result="delivered"}',
                     'berthlet_status_sink_queue_depth{sink="local"}',
                     'berthlet_status_sink_delivery_lag_seconds_count{sink="local"}'):
            assert line in metrics, line
        # The items sent while both receivers were down (a pod, its deletion, the node) were retried.
        assert re.search(r'berthlet_status_sink_deliveries_total\{sink="hook",kind="\w+",result="retried"\} [1-9]',
                         metrics), metrics
    finally:
        rx.stop_all()  # berthlet stays up: the fixture removes its pods through it


def remove_pods_and_stop(b):
    """Removes every manifest, waits for the pods to go and stops berthlet (exit status 0):
    the seconds the stop took."""
    for f in b.manifests.iterdir():
        f.unlink()
    L.wait_for(lambda: b.pods() == [], timeout=60, what="pods removed")
    t0 = time.monotonic()
    assert b.stop() == 0
    return time.monotonic() - t0


def pod_running_seconds(b, name):
    start = time.monotonic()
    b.write(f"{name}.yaml", pod_manifest(name, [container("c", SLEEPER)]))
    b.wait_pod(name, lambda p: running(p, "c"))
    return time.monotonic() - start


def test_slow_receiver_does_not_delay_pods(berthlet_factory, tmp_path):
    plain = berthlet_factory().start()
    pod_running_seconds(plain, "warm")  # the image is pulled once, outside the measures
    baseline = pod_running_seconds(plain, "plain")
    for f in plain.manifests.iterdir():
        f.unlink()
    L.wait_for(lambda: plain.pods() == [], timeout=60, what="pods removed")
    plain.stop()
    rx, cfg = receiver_and_config(tmp_path, "slow", "slow", ["timeout: 40s"])
    b = berthlet_factory()
    try:
        b.start("--config", str(cfg))
        with_sink = pod_running_seconds(b, "slowed")
        print(f"pod running after {baseline:.2f}s without a sink, {with_sink:.2f}s with a 30 s receiver")
        assert with_sink < baseline + 2.0, (baseline, with_sink)
        assert len(rx.requests) >= 1  # the sink was busy with the slow receiver meanwhile
        # Shutdown is bounded although a request is in flight.
        assert remove_pods_and_stop(b) < 10
        assert "undelivered item(s) left at shutdown" in b.log()
    finally:
        rx.stop_all()  # berthlet stays up: the fixture removes its pods through it


def test_rejected_item_is_dropped_after_one_try(berthlet_factory, tmp_path):
    rx, cfg = receiver_and_config(tmp_path, "picky", "reject-pods", ["initialBackoff: 100ms"])
    b = berthlet_factory()
    try:
        b.start("--config", str(cfg))
        b.write("p.yaml", pod_manifest("p", [container("c", SLEEPER)]))
        b.wait_pod("p", lambda p: running(p, "c"))
        time.sleep(3)  # time for retries, if there were any
        with rx.lock:
            bodies = [json.dumps(r.body, sort_keys=True) for r in rx.requests if r.body["kind"] == "pod"]
        assert bodies, "no pod status was sent"
        assert len(bodies) == len(set(bodies)), "a rejected snapshot was sent again"
        rejected = [line for line in b.log().splitlines() if "status sink picky: pod" in line and "rejected" in line]
        assert len(rejected) == len(bodies), rejected
        assert "HTTP 400" in rejected[0]
        assert any(r.body["kind"] == "node" for r in rx.requests)  # other kinds still flow
    finally:
        rx.stop_all()  # berthlet stays up: the fixture removes its pods through it


def test_file_sink_full_disk_is_logged_and_recovers(berthlet_factory):
    status_dir = ROOT / "sink-tmpfs"
    status_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "berthlet-sink-test", str(status_dir)], check=True)
    b = berthlet_factory()
    try:
        filler = status_dir / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=1000"], capture_output=True)
        cfg = write_config(b.root / "config.yaml", f"""- name: local
  type: file
  directory: {status_dir}/status
  maxBackoff: 1s
""")
        b.start("--config", str(cfg))
        b.write("p.yaml", pod_manifest("p", [container("c", SLEEPER)]))
        b.wait_pod("p", lambda p: running(p, "c"))
        L.wait_for(lambda: "no space left on device" in b.log(), timeout=20, what="the ENOSPC log line")
        time.sleep(3)
        full = [line for line in b.log().splitlines() if "no space left on device" in line]
        assert 1 <= len(full) <= 3, full  # one line per failing item, not one per retry
        assert "status sink local:" in full[0]
        assert not list((status_dir / "status").rglob("*.json")), "something was written on a full disk"
        assert not list(status_dir.rglob(".*.tmp")), "a temp file was left"
        filler.unlink()
        pod = b.pod("p")
        path = status_dir / "status" / "pods" / f'default_{pod["metadata"]["name"]}.json'
        L.wait_for(lambda: path.exists() and json.loads(path.read_text()) == b.pod("p"), timeout=20,
                   what="the pod's file after space came back")
        assert (status_dir / "status" / "node.json").exists()
    finally:
        subprocess.run(["umount", "-l", str(status_dir)])


def test_pod_removed_while_down_leaves_the_sinks(berthlet_factory, tmp_path):
    """A manifest removed while berthlet is stopped: at the next start the file sink removes
    that pod's file (and only it) and the webhook gets the podSet naming the pods left."""
    rx = Receiver()
    port = L.free_port()
    rx.start(port)
    status_dir, cfg = file_and_hook_config(tmp_path, [f"http://127.0.0.1:{port}/"])
    b = berthlet_factory()
    try:
        b.start("--config", str(cfg))
        b.write("stay.yaml", pod_manifest("stay", [container("c", SLEEPER)]))
        b.write("gone.yaml", pod_manifest("gone", [container("c", SLEEPER)]))
        for name in ("stay", "gone"):
            b.wait_pod(name, lambda p: running(p, "c"))
        stay = b.pod("stay")["metadata"]
        files = status_dir / "pods"
        L.wait_for(lambda: {f.name for f in files.iterdir()} == {f"default_{stay['name']}.json",
                                                                  f"default_{b.pod('gone')['metadata']['name']}.json"},
                   timeout=20, what="both pods' files")
        assert b.stop() == 0
        b.remove("gone.yaml")
        with rx.lock:
            rx.requests.clear()
        b.start("--config", str(cfg))
        L.wait_for(lambda: [f.name for f in files.iterdir()] == [f"default_{stay['name']}.json"], timeout=20,
                   what="the removed pod's file to go")

        def pod_sets():
            with rx.lock:
                return [r.body["object"] for r in rx.requests if r.body["kind"] == "podSet"]
        L.wait_for(pod_sets, timeout=20, what="the podSet at the webhook")
        assert pod_sets() == [{"node": L.NODE,
                               "pods": [{"namespace": "default", "name": stay["name"], "uid": stay["uid"]}]}]
    finally:
        rx.stop_all()  # berthlet stays up: the fixture removes its pods through it
