"""A real kube-apiserver for the kubernetes status sink's tests and bench: Debian's etcd
on loopback and kube-apiserver v1.19 built from source (docs/agent.md "Status sinks";
../shared/reference/conformance.md), with a self-signed CA, a serving certificate for
127.0.0.1, a client certificate for the node (CN=system:node:<node>, O=system:nodes, so
the Node authorizer applies) and one for the test (O=system:masters). Both processes are
started here and stopped by PID. Absent binary: the caller skips (counted)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
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
        api_log = open(self.root / "apiserver.log", "wb")
        self.procs.append(subprocess.Popen(
            [APISERVER, f"--etcd-servers=http://127.0.0.1:{self.etcd_port}", "--bind-address=127.0.0.1",
             "--advertise-address=127.0.0.1", f"--secure-port={self.port}", "--insecure-port=0",
             f"--tls-cert-file={p}/serving.crt", f"--tls-private-key-file={p}/serving.key",
             f"--client-ca-file={p}/ca.crt", f"--service-account-key-file={p}/sa.key",
             f"--service-account-signing-key-file={p}/sa.key", "--service-account-issuer=https://berth.test",
             "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/24",
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
