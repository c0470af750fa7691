#!/usr/bin/python3
"""A throw-away OCI registry for tests: Debian's docker-registry on 127.0.0.1.

Library use:

    from registry import Registry
    with Registry(users={"alice": "secret"}) as reg:   # users: optional htpasswd basic auth
        reg.addr            # "127.0.0.1:41234"
        reg.url             # "http://127.0.0.1:41234"
        reg.blob_gets(d)    # how many GET /v2/.../blobs/<d> the registry served (from its log)

    Registry(token_auth=True, users={...}) runs a Bearer token server on loopback too
    (reg.token_url) and configures the registry for token auth (RS256, x5c chain).
    Registry(tls=True) serves HTTPS with a fresh self-signed certificate for 127.0.0.1
    (reg.ca_file is its PEM; reg.url starts with https://).

CLI (for shell scripts; state is kept in <dir>/registry.json):

    python3 tests/lib/registry.py start --dir /tmp/reg [--port 5000] [--user alice:secret] [--tls]
    python3 tests/lib/registry.py stop --dir /tmp/reg
    python3 tests/lib/registry.py serve --dir /tmp/reg [--user u:p] [--token] [--anonymous-pull] [--tls]

`serve` runs in the foreground (with the token server when --token): it prints the same
JSON line (plus "token_url"), then stops everything on SIGTERM, SIGINT or EOF on stdin.

`start` prints {"pid", "addr", "url", "dir", "log", "ca_file"} as JSON and returns once the registry
answers. Plain HTTP unless --tls. `stop` kills the PID it recorded, nothing else.
"""

import argparse
import base64
import http.server
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def htpasswd_line(user, password):
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                         capture_output=True, text=True).stdout
    return out.strip() + "\n"


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker token auth server (distribution's token spec) on loopback.

    Issues RS256 JWTs signed with a self-signed key whose certificate is both the
    registry's rootcertbundle and the token's x5c chain. Anonymous requests get a token
    with pull access only when `anonymous_pull` is set; requests with basic auth get
    full access when the user/password match.
    """

    def __init__(self, workdir, users, anonymous_pull=False, service="berth-test-registry",
                 issuer="berth-test-issuer"):
        self.workdir = workdir
        self.users = dict(users or {})
        self.anonymous_pull = anonymous_pull
        self.service = service
        self.issuer = issuer
        self.key = os.path.join(workdir, "token.key")
        self.cert = os.path.join(workdir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2",
                        "-subj", "/CN=berth-test-token"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []  # (user or None, scope) per token request
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/token"
        self.httpd = None
        self.thread = None

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return signing_input + "." + _b64url(sig)

    def start(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import urlparse, parse_qs
                q = parse_qs(urlparse(self.path).query)
                scopes = q.get("scope", [])
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    try:
                        u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    except Exception:
                        u, p = "", None
                    if server.users.get(u) != p:
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = u
                server.requests.append((user, " ".join(scopes)))
                access = []
                for scope in scopes:
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    wanted = actions.split(",")
                    if user is None:
                        granted = ["pull"] if server.anonymous_pull and "pull" in wanted else []
                    else:
                        granted = wanted
                    access.append({"type": kind, "name": name, "actions": granted})
                now = int(time.time())
                token = server.sign({"iss": server.issuer, "sub": user or "", "aud": server.service,
                                     "exp": now + 600, "nbf": now - 10, "iat": now,
                                     "jti": f"{now}-{len(server.requests)}", "access": access})
                body = json.dumps({"token": token, "access_token": token, "expires_in": 600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


class Registry:
    def __init__(self, workdir=None, port=None, users=None, token_auth=False, anonymous_pull=False, tls=False,
                 client_auth=False, storage=None):
        """client_auth: TLS that requires a client certificate signed by client_ca (the pair
        client_cert/client_key is made for the test). storage: serve another registry's
        storage directory (a mirror with the same content, or the same images over mTLS)."""
        self.owns_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="berth-registry-")
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port or free_port()
        self.users = dict(users or {})
        self.token = TokenServer(self.workdir, self.users, anonymous_pull) if token_auth else None
        self.addr = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://{self.addr}"
        self.ca_file = os.path.join(self.workdir, "registry.crt") if tls else None
        self.key_file = os.path.join(self.workdir, "registry.key") if tls else None
        self.storage = storage or os.path.join(self.workdir, "storage")
        self.client_auth = client_auth
        self.client_ca = os.path.join(self.workdir, "client-ca.crt") if client_auth else None
        self.client_cert = os.path.join(self.workdir, "client.crt") if client_auth else None
        self.client_key = os.path.join(self.workdir, "client.key") if client_auth else None
        self.config = os.path.join(self.workdir, "config.yml")
        self.log = os.path.join(self.workdir, "registry.log")
        self.proc = None
        self.pid = None

    def _write_config(self):
        os.makedirs(self.storage, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: json",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            # the debug server would bind :5001 by default; keep it off
        ]
        if self.tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key_file,
                            "-out", self.ca_file, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True)
            lines += ["  tls:", f"    certificate: {self.ca_file}", f"    key: {self.key_file}"]
            if self.client_auth:
                self._make_client_pair()
                lines += ["    clientcas:", f"      - {self.client_ca}"]
        if self.token:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token.url}",
                f"    service: {self.token.service}",
                f"    issuer: {self.token.issuer}",
                f"    rootcertbundle: {self.token.cert}",
            ]
        elif self.users:
            path = os.path.join(self.workdir, "htpasswd")
            with open(path, "w") as f:
                for u, p in self.users.items():
                    f.write(htpasswd_line(u, p))
            lines += ["auth:", "  htpasswd:", "    realm: berth-test", f"    path: {path}"]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _make_client_pair(self):
        ca_key = os.path.join(self.workdir, "client-ca.key")
        csr = os.path.join(self.workdir, "client.csr")
        run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", self.client_ca,
            "-days", "2", "-subj", "/CN=berth-test-client-ca")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.client_key, "-out", csr,
            "-subj", "/CN=berth-test-client")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.client_ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", self.client_cert, "-days", "2")

    def start(self, timeout=20):
        if self.token:
            self.token.start()
        self._write_config()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config], stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        logf.close()
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}; log {self.log}:\n"
                                   + open(self.log, errors="replace").read()[-2000:])
            try:
                ctx = None
                if self.tls:
                    import ssl
                    ctx = ssl.create_default_context(cafile=self.ca_file)
                    if self.client_auth:
                        ctx.load_cert_chain(self.client_cert, self.client_key)
                urllib.request.urlopen(self.url + "/v2/", timeout=1, context=ctx).close()
                break
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not answer on {self.addr} within {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.token:
            self.token.stop()

    def cleanup(self):
        self.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def requests(self):
        """(method, uri, status) of every request the registry logged."""
        out = []
        try:
            with open(self.log, errors="replace") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("msg") != "response completed":
                        continue
                    out.append((entry.get("http.request.method"), entry.get("http.request.uri"),
                                entry.get("http.response.status")))
        except FileNotFoundError:
            pass
        return out

    def blob_gets(self, digest=None):
        """Successful blob GETs, for `digest` only when given."""
        n = 0
        for method, uri, status in self.requests():
            if method == "GET" and "/blobs/" in (uri or "") and status in (200, 206, 307):
                if digest is None or uri.rstrip("/").endswith(digest):
                    n += 1
        return n


def _cli():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start")
    st.add_argument("--dir", required=True)
    st.add_argument("--port", type=int)
    st.add_argument("--user", action="append", default=[], help="user:password (htpasswd auth)")
    st.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate (ca_file)")
    sp = sub.add_parser("stop")
    sp.add_argument("--dir", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--dir", required=True)
    sv.add_argument("--port", type=int)
    sv.add_argument("--user", action="append", default=[], help="user:password")
    sv.add_argument("--token", action="store_true", help="Bearer token auth (token server on loopback)")
    sv.add_argument("--anonymous-pull", action="store_true", help="token server grants pull without credentials")
    sv.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate (ca_file)")
    args = ap.parse_args()
    if args.cmd == "serve":
        users = dict(u.split(":", 1) for u in args.user)
        reg = Registry(workdir=os.path.abspath(args.dir), port=args.port, users=users,
                       token_auth=args.token, anonymous_pull=args.anonymous_pull, tls=args.tls)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        reg.start()
        try:
            print(json.dumps({"pid": reg.pid, "addr": reg.addr, "url": reg.url, "dir": reg.workdir,
                              "log": reg.log, "token_url": reg.token.url if reg.token else None,
                              "ca_file": reg.ca_file}), flush=True)
            # Until a signal or EOF on stdin; raw reads in this thread (a daemon thread
            # blocked in a buffered stdin read aborts the interpreter at exit).
            while not stop.is_set():
                readable, _, _ = select.select([0], [], [], 0.5)
                if readable and not os.read(0, 4096):
                    break
        finally:
            reg.stop()
        return 0
    state = os.path.join(args.dir, "registry.json")
    if args.cmd == "start":
        users = dict(u.split(":", 1) for u in args.user)
        reg = Registry(workdir=os.path.abspath(args.dir), port=args.port, users=users, tls=args.tls)
        reg.start()
        info = {"pid": reg.pid, "addr": reg.addr, "url": reg.url, "dir": reg.workdir, "log": reg.log,
                "ca_file": reg.ca_file}
        with open(state, "w") as f:
            json.dump(info, f)
        print(json.dumps(info))
        # Leave the registry running: detach from the Popen object without killing it.
        reg.proc = None
        return 0
    with open(state) as f:
        info = json.load(f)
    pid = info["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.unlink(state)
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
