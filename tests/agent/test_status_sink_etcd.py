"""The etcd status sink (docs/agent.md "etcd") against a real 3-member etcd cluster
(Debian's etcd-server) on loopback, started by this test and stopped by PID. berthlet lists
the three members; while pods change, the member berthlet is not talking to is killed (and
restarted), then the one it is talking to (found with ss): status keeps flowing and etcd
ends holding exactly the pods of berthlet's /pods. The alive key lives while berthlet does
and goes within leaseTTL after a SIGKILL; a pod whose manifest was removed while berthlet was
down is removed from etcd once berthlet is back (the podSet item). etcd is read with
etcdctl (ETCDCTL_API=3)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import agent_lib as L
from agent_lib import SLEEPER, container, pod_manifest, running
from etcd_lib import EtcdCluster
from test_status_sinks import check_node, remove_pods_and_stop, write_config

PREFIX = "/berth-test"
LEASE_TTL = 3


def etcd_config(path: Path, urls, extra=""):
    return write_config(path, f"""- name: etcd
  type: etcd
  endpoints: [{", ".join(urls)}]
  prefix: {PREFIX}
  leaseTTL: {LEASE_TTL}s
  timeout: 2s
  initialBackoff: 200ms
  maxBackoff: 1s
""" + extra)


def talking_to(cluster, pid):
    """The members berthlet (pid) has a TCP connection to, from ss."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            m = re.search(r":(\d+)\s+users:", line)  # the peer (gRPC's sockets are v4-mapped IPv6)
            if m and int(m.group(1)) in cluster.client:
                ports.add(cluster.client.index(int(m.group(1))))
    return ports


def pods_in_etcd(cluster):
    node_dir = f"{PREFIX}/pods/{L.NODE}/"
    return {k[len(node_dir):]: json.loads(v) for k, v in cluster.get_prefix(node_dir).items()}


def converged(b, cluster):
    """etcd holds exactly berthlet's pods, each one's latest status."""
    want = {f'{p["metadata"]["namespace"]}/{p["metadata"]["name"]}': p for p in b.pods()}
    return pods_in_etcd(cluster) == want


def test_etcd_sink_fails_over_and_converges(berthlet_factory, tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd")
    b = berthlet_factory()
    try:
        cluster.start_all()
        cfg = etcd_config(tmp_path / "config.yaml", cluster.urls)
        b.start("--config", str(cfg))
        b.write("a.yaml", pod_manifest("a", [container("c", SLEEPER)]))
        b.write("once.yaml", pod_manifest("once", [container("c", "exit 0")], restartPolicy="Never"))
        b.write("gone.yaml", pod_manifest("gone", [container("c", SLEEPER)]))
        b.write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: [x]}\n")
        b.wait_pod("a", lambda p: running(p, "c"))
        b.wait_pod("once", lambda p: p["status"]["phase"] == "Succeeded")
        L.wait_for(lambda: converged(b, cluster), timeout=30, what="etcd to hold berthlet's pods")
        assert talking_to(cluster, b.proc.pid) == {0}, "berthlet talks to the first endpoint that works"

        # A member berthlet does not talk to dies while pods change, and comes back.
        cluster.kill(1)
        b.remove("gone.yaml")
        b.write("b.yaml", pod_manifest("b", [container("c", SLEEPER)]))
        b.wait_pod("b", lambda p: running(p, "c"))
        L.wait_for(lambda: b.pod("gone") is None, timeout=60, what="pod gone removed")
        L.wait_for(lambda: converged(b, cluster), timeout=30, what="etcd to follow with one member down")
        cluster.start(1, state="existing")
        L.wait_for(lambda: cluster.ctl("endpoint", "health", "--cluster", check=False).returncode == 0, timeout=60,
                   what="member 1 back in the cluster")

        # The member berthlet talks to dies while pods change: berthlet moves to another.
        cluster.kill(0)
        b.write("c.yaml", pod_manifest("c", [container("c", SLEEPER)]))
        b.remove("a.yaml")
        b.wait_pod("c", lambda p: running(p, "c"))
        L.wait_for(lambda: b.pod("a") is None, timeout=60, what="pod a removed")
        L.wait_for(lambda: converged(b, cluster), timeout=30, what="etcd to follow after its member died")
        assert talking_to(cluster, b.proc.pid) <= {1, 2} and talking_to(cluster, b.proc.pid)
        phases = {k: v["status"]["phase"] for k, v in pods_in_etcd(cluster).items()}
        assert phases == {"default/once-" + L.NODE: "Succeeded", "default/b-" + L.NODE: "Running",
                          "default/c-" + L.NODE: "Running"}, phases

        node = json.loads(cluster.get_prefix(f"{PREFIX}/nodes/{L.NODE}")[f"{PREFIX}/nodes/{L.NODE}"])
        check_node(node)
        events = [json.loads(v) for v in cluster.get_prefix(f"{PREFIX}/events/{L.NODE}/").values()]
        assert ("Node", "FailedManifest") in {(e["involvedObject"]["kind"], e["reason"]) for e in events}
        assert all(re.fullmatch(r"\d{20}-\d{6}", k.rsplit("/", 1)[1])
                   for k in cluster.get_prefix(f"{PREFIX}/events/{L.NODE}/"))
        metrics = b.get("/metrics")
        assert 'berthlet_status_sink_deliveries_total{sink="etcd",kind="pod",result="delivered"}' in metrics

        # Liveness: the alive key is bound to a lease that dies with berthlet.
        alive = f"{PREFIX}/alive/{L.NODE}"
        assert alive in cluster.get_prefix(alive)
        time.sleep(LEASE_TTL * 1.5)  # keepalives hold it past its TTL
        assert alive in cluster.get_prefix(alive)
        b.stop(signal.SIGKILL)
        killed = time.monotonic()
        L.wait_for(lambda: alive not in cluster.get_prefix(alive), timeout=LEASE_TTL + 2, interval=0.2,
                   what="the alive key to go with its lease")
        print(f"alive key gone {time.monotonic() - killed:.1f}s after SIGKILL (leaseTTL {LEASE_TTL}s)")

        # A manifest removed while berthlet is down: its pod's key goes once berthlet is back.
        b.remove("b.yaml")
        b.start("--config", str(cfg))
        L.wait_for(lambda: alive in cluster.get_prefix(alive), timeout=20, what="the alive key again")
        L.wait_for(lambda: b.pod("b") is None, timeout=60, what="pod b removed after the restart")
        L.wait_for(lambda: converged(b, cluster), timeout=30, what="etcd without the pod removed while down")
        assert "default/b-" + L.NODE not in pods_in_etcd(cluster)

        # A clean stop: the pods' deletions are delivered, and the lease revoked (the alive key
        # goes at once, not after its TTL).
        remove_pods_and_stop(b)
        assert pods_in_etcd(cluster) == {}
        assert alive not in cluster.get_prefix(alive)
    finally:
        cluster.stop()  # berthlet stays up: the fixture removes its pods through it


def test_etcd_sink_all_members_down_keeps_pods_and_shutdown_is_bounded(berthlet_factory, tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd")
    b = berthlet_factory()
    try:
        cluster.start_all()
        b.start("--config", str(etcd_config(tmp_path / "config.yaml", cluster.urls)))
        b.write("p.yaml", pod_manifest("p", [container("c", SLEEPER)]))
        b.wait_pod("p", lambda p: running(p, "c"))
        L.wait_for(lambda: converged(b, cluster), timeout=30, what="etcd to hold the pod")
        cluster.stop()
        b.write("q.yaml", pod_manifest("q", [container("c", SLEEPER)]))
        b.wait_pod("q", lambda p: running(p, "c"), timeout=30)  # pods do not wait for the sink
        L.wait_for(lambda: "status sink etcd:" in b.log() and "127.0.0.1" in b.log(), timeout=20,
                   what="the failure logged")
        lines = [line for line in b.log().splitlines() if "status sink etcd:" in line and "retrying" in line]
        assert 1 <= len(lines) <= 4, lines  # one line when it starts failing, not one per retry
        # Every member is named in the line: all were tried.
        assert all(u in lines[0] for u in cluster.urls), lines[0]
        # The cluster comes back: what was kept is delivered.
        cluster.start_all()
        L.wait_for(lambda: converged(b, cluster), timeout=30, what="etcd to catch up")
        # Shutdown with the cluster gone and pod deletions to deliver is bounded.
        cluster.stop()
        assert remove_pods_and_stop(b) < 10
        assert "undelivered item(s) left at shutdown" in b.log()
    finally:
        cluster.stop()
