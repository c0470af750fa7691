"""The kubernetes status sink against a real kube-apiserver (v1.19 built from source, with
Debian's etcd on loopback, both started here; kube_lib.py): berthlet registers its Node
with node info and capacity, renews its Lease, keeps a mirror pod per static pod (the
config.mirror annotation, owned by the Node) whose status follows the containers,
recreates a mirror pod deleted through kubectl, deletes the mirror pods of removed
manifests (also of one removed while berthlet was stopped), and fails over from a dead API
server URL to a live one. Skipped (counted) where the kube-apiserver binary is absent; the
protocol is then still covered by test_status_sink_kube_replay.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import agent_lib as L
import kube_lib as K
from agent_lib import SLEEPER, container, pod_manifest, running
from conftest import ROOT

pytestmark = pytest.mark.skipif(not K.apiserver_available(),
                                reason=f"no kube-apiserver at {K.APISERVER} (or no etcd): see conformance.md")


@pytest.fixture(scope="module")
def apiserver():
    ROOT.mkdir(parents=True, exist_ok=True)
    # A fresh one (etcd data, certificates) each time pytest makes the fixture.
    api = K.KubeApiServer(Path(tempfile.mkdtemp(prefix="kube-apiserver-", dir=ROOT)))
    try:
        yield api.start()
    finally:
        api.stop()


def write_config(path, sinks):
    path.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                    "nodeStatusUpdateFrequency: 1s\nstatusSinks:\n" + sinks)
    return path


def kubectl(api, *args):
    kc = api.root / "admin.kubeconfig"
    if not kc.exists():
        p = api.pki
        kc.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "a",
            "clusters": [{"name": "c", "cluster": {"server": api.url, "certificate-authority": f"{p}/ca.crt"}}],
            "users": [{"name": "u", "user": {"client-certificate": f"{p}/admin.crt", "client-key": f"{p}/admin.key"}}],
            "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}]}))
    return subprocess.run(["kubectl", "--kubeconfig", str(kc), *args], capture_output=True, text=True, timeout=60)


def mirror(api, name):
    return api.node_pods().get(f"{name}-{L.NODE}")


def test_node_lease_and_mirror_pods(apiserver, berthlet_factory, tmp_path):
    api = apiserver
    kc = api.kubeconfig(tmp_path / "node.kubeconfig", inline=True)
    cfg = write_config(tmp_path / "config.yaml", f"- name: kube\n  type: kubernetes\n  kubeconfig: {kc}\n"
                       "  nodeLeaseDuration: 8s\n  initialBackoff: 200ms\n  maxBackoff: 2s\n")
    b = berthlet_factory()
    b.start("--config", str(cfg))
    b.write("a.yaml", pod_manifest("a", [container("c", SLEEPER)], ))
    b.write("once.yaml", pod_manifest("once", [container("c", "sleep 1; exit 0")], restartPolicy="Never"))
    b.wait_pod("a", lambda p: running(p, "c"))

    # The Node: labels, node info, capacity, addresses, conditions.
    node = L.wait_for(lambda: api.obj(f"/api/v1/nodes/{L.NODE}"), timeout=60, what="the Node")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == L.NODE and labels["kubernetes.io/os"] == "linux"
    assert labels["beta.kubernetes.io/arch"] == labels["kubernetes.io/arch"]
    st = node["status"]
    assert st["nodeInfo"]["kubeletVersion"].startswith("berthlet/")
    assert st["nodeInfo"]["containerRuntimeVersion"].count("://") == 1
    assert int(st["capacity"]["pods"]) == 110 and int(st["capacity"]["cpu"]) >= 1
    assert {a["type"] for a in st["addresses"]} == {"InternalIP", "Hostname"}
    L.wait_for(lambda: {c["type"]: c["status"] for c in api.obj(f"/api/v1/nodes/{L.NODE}")["status"]["conditions"]}
               .get("Ready") == "True", timeout=60, what="Node Ready=True")

    # The Lease: held by the node, owned by the Node, renewed every 2 s (8 s / 4).
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{L.NODE}"
    # (the server may hold the Lease of an earlier test's berthlet: renewed with this one's duration)
    lease = L.wait_for(lambda: (api.obj(lease_path) or {}).get("spec", {}).get("leaseDurationSeconds") == 8 and
                       api.obj(lease_path), timeout=60, what="the node Lease with this berthlet's duration")
    assert lease["spec"]["holderIdentity"] == L.NODE
    L.wait_for(lambda: api.obj(lease_path)["metadata"].get("ownerReferences"), timeout=15, what="the Lease's owner")
    assert api.obj(lease_path)["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = api.obj(lease_path)["spec"]["renewTime"]
    L.wait_for(lambda: api.obj(lease_path)["spec"]["renewTime"] != first, timeout=10, what="a Lease renewal")

    # Mirror pods: annotation, owner reference, status following the containers.
    pod = b.pod("a")
    m = L.wait_for(lambda: mirror(api, "a"), timeout=60, what="the mirror pod of a")
    ann = m["metadata"]["annotations"]
    assert ann["kubernetes.io/config.mirror"] == pod["metadata"]["uid"] == ann["kubernetes.io/config.hash"]
    assert ann["kubernetes.io/config.source"] == "file"
    assert m["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": L.NODE,
                                                 "uid": node["metadata"]["uid"], "controller": True}]
    assert m["spec"]["nodeName"] == L.NODE
    L.wait_for(lambda: mirror(api, "a")["status"].get("phase") == "Running" and
               "running" in mirror(api, "a")["status"]["containerStatuses"][0]["state"], timeout=60,
               what="the mirror pod Running")
    b.wait_pod("once", lambda p: p["status"]["phase"] == "Succeeded")
    L.wait_for(lambda: mirror(api, "once")["status"]["phase"] == "Succeeded", timeout=60,
               what="the run-once mirror pod Succeeded")
    assert mirror(api, "once")["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    # Deleted through kubectl: recreated (a new UID), status and all.
    old_uid = mirror(api, "a")["metadata"]["uid"]
    if shutil.which("kubectl"):
        r = kubectl(api, "delete", "pod", f"a-{L.NODE}", "--grace-period=0", "--force")
        assert r.returncode == 0, r.stderr
    else:
        code, body = api.request("DELETE", f"/api/v1/namespaces/default/pods/a-{L.NODE}", {"gracePeriodSeconds": 0})
        assert code == 200, body
    L.wait_for(lambda: mirror(api, "a") and mirror(api, "a")["metadata"]["uid"] != old_uid and
               mirror(api, "a")["status"].get("phase") == "Running", timeout=60, what="the mirror pod recreated")

    # A changed manifest: the outdated mirror pod is replaced by one with the new hash.
    b.write("a.yaml", pod_manifest("a", [container("c", SLEEPER)], terminationGracePeriodSeconds=2))
    L.wait_for(lambda: b.pod("a") and b.pod("a")["metadata"]["uid"] != pod["metadata"]["uid"], timeout=60,
               what="the new pod a")
    new_uid = b.pod("a")["metadata"]["uid"]
    L.wait_for(lambda: mirror(api, "a") and
               mirror(api, "a")["metadata"]["annotations"]["kubernetes.io/config.mirror"] == new_uid,
               timeout=60, what="the mirror pod of the changed manifest")

    # A removed manifest: its mirror pod is deleted.
    b.remove("once.yaml")
    L.wait_for(lambda: mirror(api, "once") is None, timeout=60, what="the mirror pod of a removed manifest deleted")
    assert "credentials rejected" not in b.log()


def test_removed_while_stopped_and_failover(apiserver, berthlet_factory, tmp_path):
    api = apiserver
    dead = L.free_port()  # nothing listens there: the first URL fails at once
    sinks = (f"- name: kube\n  type: kubernetes\n  servers: [https://127.0.0.1:{dead}, {api.url}]\n"
             f"  caFile: {api.pki}/ca.crt\n  clientCertFile: {api.pki}/node.crt\n"
             f"  clientKeyFile: {api.pki}/node.key\n  timeout: 2s\n  initialBackoff: 200ms\n  maxBackoff: 2s\n")
    cfg = write_config(tmp_path / "config.yaml", sinks)
    b = berthlet_factory()
    b.start("--config", str(cfg))
    b.write("keep.yaml", pod_manifest("keep", [container("c", SLEEPER)]))
    b.write("drop.yaml", pod_manifest("drop", [container("c", SLEEPER)]))
    for name in ("keep", "drop"):
        b.wait_pod(name, lambda p: running(p, "c"))
        L.wait_for(lambda: (mirror(api, name) or {}).get("status", {}).get("phase") == "Running", timeout=60,
                   what=f"mirror pod {name} through the second URL")
    # berthlet stops (its pods keep running), a manifest goes, berthlet comes back: the
    # set of pods it sends at start removes the orphaned mirror pod.
    assert b.stop() == 0
    b.remove("drop.yaml")
    b.start("--config", str(cfg))
    L.wait_for(lambda: mirror(api, "drop") is None, timeout=60, what="the orphaned mirror pod deleted")
    assert mirror(api, "keep") is not None


def test_exchanges_captured_through_a_proxy(apiserver, berthlet_factory, tmp_path):
    """The scenario test_status_sink_kube_replay.py replays, against the real server through
    a recording proxy. BERTH_KUBE_RECORD=1 writes the recording to tests/agent/data/."""
    api = apiserver
    proxy = K.RecordingProxy(api)

    def bump_lease():  # someone else writes the Lease: berthlet's next renewal gets a 409
        lease = api.obj(K.LEASE)
        lease["metadata"].setdefault("labels", {})["berth.test/bumped"] = "1"
        code, body = api.request("PUT", K.LEASE, lease)
        assert code == 200, body
    try:
        b = berthlet_factory()
        K.scenario(b, proxy.log, f"- name: kube\n  type: kubernetes\n  servers: [{proxy.url}]\n", tmp_path, bump_lease)
    finally:
        proxy.stop()
    log = proxy.log.items
    node_post = [e for e in log if e["method"] == "POST" and e["path"] == "/api/v1/nodes"]
    assert node_post and node_post[0]["status"] in (201, 409)
    assert any(e["status"] == 201 and e["path"].endswith("/namespaces/default/pods") for e in log)
    assert any(e["status"] == 409 and e["path"] == K.LEASE for e in log)
    if os.environ.get("BERTH_KUBE_RECORD"):
        K.EXCHANGES.parent.mkdir(parents=True, exist_ok=True)
        K.EXCHANGES.write_text(json.dumps({"server": "kube-apiserver v1.19 (mayooot/k8s-1.19-read, built from source)",
                                           "node": L.NODE, "exchanges": log}, indent=1) + "\n")


def test_rejected_token_is_one_log_line_and_a_fixed_one_is_used(apiserver, berthlet_factory, tmp_path):
    api = apiserver
    token = tmp_path / "token"
    token.write_text("not-the-token\n")
    cfg = write_config(tmp_path / "config.yaml", f"- name: kube\n  type: kubernetes\n  servers: [{api.url}]\n"
                       f"  caFile: {api.pki}/ca.crt\n  bearerTokenFile: {token}\n  initialBackoff: 200ms\n"
                       "  maxBackoff: 1s\n")
    b = berthlet_factory()
    b.start("--config", str(cfg))
    b.write("t.yaml", pod_manifest("t", [container("c", SLEEPER)]))
    b.wait_pod("t", lambda p: running(p, "c"))
    L.wait_for(lambda: "credentials rejected" in b.log(), timeout=60, what="the rejected-credentials log line")
    assert mirror(api, "t") is None
    time.sleep(3)  # retries meanwhile: still one line
    rejected = [line for line in b.log().splitlines() if "credentials rejected" in line]
    assert len(rejected) == 1, rejected
    assert "HTTP 401" in rejected[0]
    token.write_text(api.token + "\n")  # fixed: read at the next request, no restart
    L.wait_for(lambda: (mirror(api, "t") or {}).get("status", {}).get("phase") == "Running", timeout=60,
               what="the mirror pod once the token is right")
    assert "status sink kube: delivering again" in b.log()
