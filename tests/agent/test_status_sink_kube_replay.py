"""The kubernetes sink's protocol, replayed: the exchanges in
data/kube-apiserver-v1.19-exchanges.json were recorded from a real kube-apiserver v1.19
built from source (mayooot/k8s-1.19-read; test_status_sink_kube.py's recording test,
BERTH_KUBE_RECORD=1) while berthlet registered its Node, created and renewed its Lease
(one renewal refused with 409 Conflict), created a mirror pod, patched its status and
deleted it. Here a loopback HTTP server answers berthlet as the real server did, request by
request (per method and path, in recorded order), and checks each of berthlet's requests
against the recorded one: the same paths in the same order, and the fields that matter
(labels, owner references, the config.mirror annotation, the UID preconditions, the Lease's
resourceVersion). Runs wherever the suite runs, kube-apiserver or not."""
from __future__ import annotations

import json
import threading

import agent_lib as L
import kube_lib as K


class Replay:
    def __init__(self, recording):
        self.recording = recording
        self.log = K.Exchanges()
        self.problems = []
        self.next = {}
        self.lock = threading.Lock()
        self.old_hash = next(e["request"]["metadata"]["annotations"]["kubernetes.io/config.mirror"]
                             for e in recording if e["method"] == "POST" and e["path"].endswith("/pods"))
        self.new_hash = None
        self.srv = K.serve(self.answer)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def answer(self, h, method):
        body = K.read_body(h)
        with self.lock:
            same = [e for e in self.recording if e["method"] == method and e["path"] == h.path]
            if not same:
                self.problems.append(f"unexpected request {method} {h.path}")
                K.reply(h, 500, {"kind": "Status", "message": "not in the recording"})
                return
            i = self.next.get((method, h.path), 0)
            self.next[(method, h.path)] = i + 1
            rec = same[min(i, len(same) - 1)]
            if method == "POST" and h.path.endswith("/pods"):
                self.new_hash = body["metadata"]["annotations"]["kubernetes.io/config.mirror"]
            self.check(method, h.path, body, rec["request"], replayed=i < len(same))
            text = json.dumps(rec["response"])
            if self.new_hash:  # the static pod's UID of this run for the recorded one
                text = text.replace(self.old_hash, self.new_hash)
        self.log.add(method, h.path, body, rec["status"], json.loads(text))
        K.reply(h, rec["status"], json.loads(text))

    def expect(self, what, got, want):
        if got != want:
            self.problems.append(f"{what}: got {got!r}, recorded {want!r}")

    def check(self, method, path, got, want, replayed):
        """replayed: want is the recorded request at this position (not the last one repeated
        after berthlet made more of these than the recording has)."""
        where = f"{method} {path}"
        if want is None or got is None:
            self.expect(f"{where} has a body", got is not None, want is not None)
            return
        if path == "/api/v1/nodes":
            self.expect(f"{where} labels", got["metadata"]["labels"], want["metadata"]["labels"])
            self.expect(f"{where} status keys", sorted(got["status"]), sorted(want["status"]))
        elif path.endswith("/nodes/node1/status"):
            self.expect(f"{where} patch keys", sorted(got), ["status"])
            self.expect(f"{where} condition types", [c["type"] for c in got["status"]["conditions"]],
                        [c["type"] for c in want["status"]["conditions"]])
        elif method == "POST" and path.endswith("/pods"):
            ann = got["metadata"]["annotations"]
            self.expect(f"{where} config.source", ann["kubernetes.io/config.source"], "file")
            self.expect(f"{where} config.hash", ann["kubernetes.io/config.hash"], ann["kubernetes.io/config.mirror"])
            # the recorded Node's UID, which this replay served to berthlet
            self.expect(f"{where} ownerReferences", got["metadata"]["ownerReferences"],
                        want["metadata"]["ownerReferences"])
            self.expect(f"{where} nodeName", got["spec"]["nodeName"], want["spec"]["nodeName"])
        elif path.endswith("/status"):  # a mirror pod's
            self.expect(f"{where} UID precondition", got["metadata"], want["metadata"])
            if got["status"].get("phase") not in ("Pending", "Running"):
                self.problems.append(f"{where}: phase {got['status'].get('phase')!r}")
        elif path.startswith("/apis/coordination.k8s.io/"):
            self.expect(f"{where} spec holder and duration",
                        {k: got["spec"][k] for k in ("holderIdentity", "leaseDurationSeconds")},
                        {k: want["spec"][k] for k in ("holderIdentity", "leaseDurationSeconds")})
            if replayed:  # the version of the Lease last served
                self.expect(f"{where} resourceVersion", got["metadata"].get("resourceVersion"),
                            want["metadata"].get("resourceVersion"))
            self.expect(f"{where} ownerReferences", got["metadata"].get("ownerReferences"),
                        want["metadata"].get("ownerReferences"))
        elif method == "DELETE":
            self.expect(f"{where} options", got, want)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def mutations(items):
    """Per object (the Node, the Lease, the mirror pod): the first occurrence of each
    mutating request, in order. Between objects the order is timing (the Lease's period)."""
    def kind(path):
        return "lease" if "/leases" in path else "pod" if "/pods" in path else "node"
    seen = {}
    for e in items:
        order = seen.setdefault(kind(e["path"]), [])
        if e["method"] != "GET" and (e["method"], e["path"]) not in order:
            order.append((e["method"], e["path"]))
    return seen


def test_kube_sink_replays_exchanges_recorded_from_kube_apiserver_v1_19(berthlet_factory, tmp_path):
    recording = json.loads(K.EXCHANGES.read_text())["exchanges"]
    replay = Replay(recording)
    try:
        b = berthlet_factory()
        K.scenario(b, replay.log, f"- name: kube\n  type: kubernetes\n  servers: [{replay.url}]\n", tmp_path)
    finally:
        replay.stop()
    assert not replay.problems, "\n".join(replay.problems)
    assert replay.new_hash and replay.new_hash != replay.old_hash
    assert mutations(replay.log.items) == mutations(recording)
    # After the 409: the Lease read again, and renewed with the resourceVersion read.
    items = replay.log.items
    i = next(n for n, e in enumerate(items) if e["status"] == 409)
    after = [(e["method"], e["path"]) for e in items[i + 1:] if e["path"] == K.LEASE][:2]
    assert after == [("GET", K.LEASE), ("PUT", K.LEASE)], after
    assert not [line for line in b.log().splitlines() if "status sink kube:" in line and "rejected" in line]
