"""A real kube-apiserver for the kubernetes status sink's tests and bench: Debian's etcd
on loopback and kube-apiserver v1.19 built from source (docs/agent.md "Status sinks";
../shared/reference/conformance.md), with a self-signed CA, a serving certificate for
127.0.0.1, a client certificate for the node (CN=system:node:<node>, O=system:nodes, so
the Node authorizer applies) and one for the test (O=system:masters). Both processes are
started here and stopped by PID. Absent binary: the caller skips (counted)."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import agent_lib as L

APISERVER = os.environ.get("BERTH_KUBE_APISERVER", "/var/tmp/berth-anchors/kube-apiserver/kube-apiserver")


def apiserver_available():
    return os.access(APISERVER, os.X_OK) and shutil.which("etcd") is not None


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, node: str):
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=berth-test-ca", cwd=d)

    def issue(name, subj, ext=None):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj,
                cwd=d)
        extra = []
        if ext:
            (d / f"{name}.ext").write_text(ext)
            extra = ["-extfile", f"{name}.ext"]
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", *extra, cwd=d)
    issue("serving", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    issue("node", f"/O=system:nodes/CN=system:node:{node}")
    issue("admin", "/O=system:masters/CN=berth-test-admin")
    openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    return d


class KubeApiServer:
    def __init__(self, root: Path, node: str = L.NODE):
        self.root = root
        self.node = node
        self.pki = make_pki(root / "pki", node)
        self.etcd_port, self.etcd_peer, self.port = L.free_port(), L.free_port(), L.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = "berth-test-node-token"
        self.procs = []
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        self.ssl = ctx

    def start(self):
        etcd_log = open(self.root / "etcd.log", "wb")
        self.procs.append(subprocess.Popen(
            ["etcd", "--name", "berth-test", "--data-dir", str(self.root / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
             "--initial-cluster", f"berth-test=http://127.0.0.1:{self.etcd_peer}"],
            stdout=etcd_log, stderr=subprocess.STDOUT))
        p = self.pki
        # A bearer token for the node, as an alternative to its certificate.
        (p / "tokens.csv").write_text(f'{self.token},system:node:{self.node},node-uid,"system:nodes"\n')
        api_log = open(self.root / "apiserver.log", "wb")
        self.procs.append(subprocess.Popen(
            [APISERVER, f"--etcd-servers=http://127.0.0.1:{self.etcd_port}", "--bind-address=127.0.0.1",
             "--advertise-address=127.0.0.1", f"--secure-port={self.port}", "--insecure-port=0",
             f"--tls-cert-file={p}/serving.crt", f"--tls-private-key-file={p}/serving.key",
             f"--client-ca-file={p}/ca.crt", f"--service-account-key-file={p}/sa.key",
             f"--service-account-signing-key-file={p}/sa.key", "--service-account-issuer=https://berth.test",
             f"--token-auth-file={p}/tokens.csv", "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/24",
             "--enable-priority-and-fairness=false", "--logtostderr=true", "--v=1"],
            stdout=api_log, stderr=subprocess.STDOUT))
        L.wait_for(self.ready, timeout=120, interval=0.5, what="kube-apiserver /readyz")
        L.wait_for(lambda: self.get("/api/v1/namespaces/kube-node-lease")[0] == 200, timeout=60,
                   what="the kube-node-lease namespace")
        return self

    def ready(self):
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited: {proc.returncode}; see {self.root}")
        return self.get("/readyz")[0] == 200

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def request(self, method, path, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw.startswith(b"{") else raw.decode()
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw.startswith(b"{") else raw.decode()

    def get(self, path):
        return self.request("GET", path)

    def obj(self, path):
        """The object at path, or None when 404."""
        code, body = self.get(path)
        if code == 404:
            return None
        assert code == 200, (path, code, body)
        return body

    def node_pods(self):
        sel = urllib.parse.quote(f"spec.nodeName={self.node}")
        return {p["metadata"]["name"]: p for p in self.obj(f"/api/v1/pods?fieldSelector={sel}")["items"]}

    def sink_config(self, name="kube", extra=""):
        """A kubernetes sink entry for berthlet's config, with the node's certificate."""
        return (f"- name: {name}\n  type: kubernetes\n  servers: [{self.url}]\n  caFile: {self.pki}/ca.crt\n"
                f"  clientCertFile: {self.pki}/node.crt\n  clientKeyFile: {self.pki}/node.key\n" + extra)

    def kubeconfig(self, path: Path, servers=None, inline=True):
        """A kubeconfig for the node: PEM inline (-data keys) or as file paths."""
        import base64

        def b64(f):
            return base64.b64encode((self.pki / f).read_bytes()).decode()
        cluster = {"server": (servers or [self.url])[0]}
        user = {}
        if inline:
            cluster["certificate-authority-data"] = b64("ca.crt")
            user = {"client-certificate-data": b64("node.crt"), "client-key-data": b64("node.key")}
        else:
            cluster["certificate-authority"] = str(self.pki / "ca.crt")
            user = {"client-certificate": str(self.pki / "node.crt"), "client-key": str(self.pki / "node.key")}
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "berth",
               "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:1"}},
                            {"name": "test", "cluster": cluster}],
               "users": [{"name": "node", "user": user}],
               "contexts": [{"name": "berth", "context": {"cluster": "test", "user": "node"}}]}
        path.write_text(json.dumps(doc))
        return path


# ---- recorded exchanges (test_status_sink_kube.py records, ..._replay.py replays) --------

EXCHANGES = Path(__file__).resolve().parent / "data" / "kube-apiserver-v1.19-exchanges.json"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{L.NODE}"


def scrub(obj):
    """This machine's identity out of a recorded Node (machineID, bootID); managedFields
    (the server's bookkeeping, half the size) left out."""
    if isinstance(obj, dict):
        return {k: ("0" * 32 if k in ("machineID", "bootID") else scrub(v)) for k, v in obj.items()
                if k != "managedFields"}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


class Exchanges:
    """Requests (and responses) in arrival order, shared by the proxy and the replay server."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, method, path, request, status, response):
        with self.lock:
            self.items.append({"method": method, "path": path, "request": request, "status": status,
                               "response": response})

    def matching(self, method, path, status=None):
        with self.lock:
            return [e for e in self.items if e["method"] == method and e["path"] == path and
                    (status is None or e["status"] == status)]


def read_body(handler):
    n = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(n) if n else b""
    return json.loads(raw) if raw else None


def reply(handler, status, body):
    raw = json.dumps(body).encode() if body is not None else b""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


def serve(handler_fn):
    """A loopback HTTP server calling handler_fn(handler, method) for every request."""
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            handler_fn(self, "GET")

        def do_POST(self):
            handler_fn(self, "POST")

        def do_PUT(self):
            handler_fn(self, "PUT")

        def do_PATCH(self):
            handler_fn(self, "PATCH")

        def do_DELETE(self):
            handler_fn(self, "DELETE")
    srv = ThreadingHTTPServer(("127.0.0.1", L.free_port()), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class RecordingProxy:
    """Plain HTTP on loopback in front of the API server: forwards each request with the
    node's client certificate and records it with the answer."""

    def __init__(self, api: KubeApiServer):
        self.api = api
        self.log = Exchanges()
        ctx = ssl.create_default_context(cafile=str(api.pki / "ca.crt"))
        ctx.load_cert_chain(str(api.pki / "node.crt"), str(api.pki / "node.key"))

        def forward(h, method):
            body = read_body(h)
            conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=10)
            headers = {"Content-Type": h.headers.get("Content-Type", "application/json"), "Accept": "application/json"}
            conn.request(method, h.path, body=json.dumps(body) if body is not None else None, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            conn.close()
            answer = json.loads(raw) if raw.startswith(b"{") else None
            self.log.add(method, h.path, scrub(body), r.status, scrub(answer))
            reply(h, r.status, answer)
        self.srv = serve(forward)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def scenario(b, log: Exchanges, sink_config: str, tmp_path: Path, bump_lease=None):
    """What the exchanges are recorded from and replayed with: a Node registered, its Lease
    created and renewed, a 409 on a renewal (bump_lease changes the Lease meanwhile when
    recording; the replay answers 409 where the server did), a mirror pod created with its
    status patched until Running, then removed with its manifest."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                   "nodeStatusUpdateFrequency: 1s\nstatusSinks:\n" + sink_config +
                   "  nodeLeaseDuration: 4s\n  initialBackoff: 100ms\n  maxBackoff: 1s\n")
    b.write("a.yaml", L.pod_manifest("a", [L.container("c", L.SLEEPER)]))
    b.start("--config", str(cfg))
    pod_path = f"/api/v1/namespaces/default/pods/a-{L.NODE}"

    def running_patched():
        return any(e["status"] == 200 and e["request"]["status"].get("phase") == "Running"
                   for e in log.matching("PATCH", pod_path + "/status"))

    def wait_for(cond, timeout, what):
        try:
            L.wait_for(cond, timeout=timeout, what=what)
        except AssertionError as e:
            seen = "\n".join(f'{x["method"]} {x["path"]} {x["status"]} {json.dumps(x["response"])[:200]}'
                             for x in log.items[-40:])
            raise AssertionError(f"{e}\n--- exchanges\n{seen}\n--- berthlet log\n{b.log()[-3000:]}") from None
    wait_for(running_patched, timeout=60, what="the mirror pod's status patched to Running")
    wait_for(lambda: len(log.matching("PUT", LEASE, 200)) >= 2, timeout=30, what="two Lease renewals")
    if bump_lease:
        bump_lease()
    wait_for(lambda: log.matching("PUT", LEASE, 409), timeout=30, what="a Lease renewal refused with 409")
    n = len(log.matching("PUT", LEASE, 200))
    wait_for(lambda: len(log.matching("PUT", LEASE, 200)) > n, timeout=30, what="the Lease renewed after the 409")
    b.remove("a.yaml")
    wait_for(lambda: log.matching("DELETE", pod_path, 200), timeout=60, what="the mirror pod deleted")
    wait_for(lambda: b.pods() == [], timeout=60, what="pod a removed")
    assert b.stop() == 0


class PodWatch:
    """A watch on the node's pods (GET ?watch=1, one JSON event per line), noting when each
    pod's first container was first seen running (time.monotonic()); for the bench."""

    def __init__(self, api: KubeApiServer):
        self.running_at = {}
        self.lock = threading.Lock()
        sel = urllib.parse.quote(f"spec.nodeName={api.node}")
        self.conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ssl, timeout=3600)
        self.conn.request("GET", f"/api/v1/pods?watch=1&fieldSelector={sel}", headers={"Accept": "application/json"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for line in self.resp:
                now = time.monotonic()
                ev = json.loads(line)
                pod = ev.get("object", {})
                cs = pod.get("status", {}).get("containerStatuses", [])
                if cs and "running" in cs[0].get("state", {}):
                    with self.lock:
                        self.running_at.setdefault(pod["metadata"]["name"], now)
        except Exception:  # noqa: BLE001  (closed by stop(): http.client raises several kinds)
            pass

    def stop(self):
        self.conn.sock and self.conn.sock.shutdown(2)
        self.conn.close()
