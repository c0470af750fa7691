#!/usr/bin/python3
"""A hostile OCI registry for tests: serves whatever a test tells it to, as slowly, as
deeply nested or as large as it likes. Loopback only; every request loop is bounded.

Library (tests/cri and cri/image/tests):

    from hostile_registry import HostileRegistry
    with HostileRegistry() as reg:
        reg.route("/v2/x/manifests/1", body=b"...", headers={"Content-Type": ...})
        reg.route("/v2/x/blobs/sha256:...", body=data, rate=1)    # 1 byte/s
        reg.add_image("x", "1", layers=[(digest, data)], config=b"{...}")   # -> summary
        reg.addr, reg.url, reg.hits(path), reg.log

A route: status, headers, body (bytes) or a generated body (`size` bytes of `fill`),
`rate` (bytes per second, 0: at once), `delay` (seconds before answering). Every finished
or broken response is logged in reg.log as {"path", "status", "sent", "size", "complete",
"end"}; "end" says why it ended: "complete", "peer closed" (the client closed or reset the
connection: a failed write, or seen while trickling), "stopping", "deadline" or "write
failed: ...".

CLI (for the GoogleTest suites): prints one JSON line {"addr", ...scenario details} and
serves until stdin closes:

    hostile_registry.py --scenario slow-blob     # image slow/img:1, its layer at 1 byte/s
    hostile_registry.py --scenario owner-404 --upstream-layer FILE
"""

import argparse
import hashlib
import http.server
import json
import os
import select
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("BERTH_TESTS_LIB", os.path.join(HERE, "..", "..", "..", "tests", "lib")))

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MAX_SECONDS = 600  # no response of this server runs longer


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Route:
    def __init__(self, status=200, headers=None, body=b"", size=None, fill=b"x", rate=0, delay=0.0,
                 handler=None):
        self.status, self.headers, self.body = status, dict(headers or {}), body
        self.size, self.fill, self.rate, self.delay, self.handler = size, fill, rate, delay, handler


class HostileRegistry:
    def __init__(self):
        self.routes = {}
        self.log = []
        self.started = []  # paths, as requests arrive
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = None

    # ---- content -------------------------------------------------------------------
    def route(self, path, **kw):
        self.routes[path] = Route(**kw)

    def add_image(self, repo, tag, layers, config=None, config_extra=None, blob_routes=None):
        """layers: [(digest, data, diff_id)] or [(digest, data)] (diff_id = digest). Returns
        {"manifest", "config", "layers", "manifest_body"}. blob_routes: digest -> Route kwargs
        overriding how that blob is served."""
        layers = [l if len(l) == 3 else (l[0], l[1], l[0]) for l in layers]
        if config is None:
            cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                   "rootfs": {"type": "layers", "diff_ids": [l[2] for l in layers]}}
            config = json.dumps(cfg).encode()
            if config_extra is not None:  # raw JSON text spliced in as "extra"
                config = config[:-1] + b', "extra": ' + config_extra + b"}"
        cdig = sha256(config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": cdig, "size": len(config)},
                               "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": d, "size": len(data)}
                                          for d, data, _ in layers]}).encode()
        self.route(f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": OCI_MANIFEST})
        self.route(f"/v2/{repo}/manifests/{sha256(manifest)}", body=manifest, headers={"Content-Type": OCI_MANIFEST})
        self.route(f"/v2/{repo}/blobs/{cdig}", body=config)
        for d, data, _ in layers:
            kw = dict(body=data)
            kw.update((blob_routes or {}).get(d, {}))
            self.route(f"/v2/{repo}/blobs/{d}", **kw)
        return {"manifest": sha256(manifest), "config": cdig, "layers": [d for d, _, _ in layers],
                "manifest_body": manifest.decode()}

    def starts(self, path):
        with self.lock:
            return sum(1 for p in self.started if p == path)

    def hits(self, path):
        with self.lock:
            return sum(1 for e in self.log if e["path"] == path)

    def entries(self, path):
        with self.lock:
            return [e for e in self.log if e["path"] == path]

    # ---- serving -------------------------------------------------------------------
    def start(self):
        reg = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _record(self, path, status, sent, size, end):
                with reg.lock:
                    reg.log.append({"path": path, "status": status, "sent": sent, "size": size,
                                    "complete": end == "complete", "end": end,
                                    "method": self.command, "headers": dict(self.headers.items())})

            def _peer_closed_within(self, seconds):
                """Waits `seconds` between two trickled writes; True as soon as the client has
                closed or reset the connection. A write alone notices late or never: the first
                one after the close still succeeds into the socket buffer (the kernel answers
                it with a RST, only the next write fails)."""
                p = select.poll()
                p.register(self.connection, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                until = time.monotonic() + seconds
                while not reg.stopping.is_set():
                    left = until - time.monotonic()
                    if left <= 0:
                        return False
                    if p.poll(min(left, 0.05) * 1000):
                        return True
                return False

            def handle_any(self):
                path = self.path
                if path == "/_log":  # for the GoogleTest suites
                    with reg.lock:
                        keys = ("path", "status", "sent", "size", "complete", "end")
                        body = json.dumps({"log": [{k: e[k] for k in keys} for e in reg.log],
                                           "started": list(reg.started)}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                with reg.lock:
                    reg.started.append(path)
                if self.command == "POST":
                    n = int(self.headers.get("Content-Length") or 0)
                    self.rfile.read(min(n, 1 << 20))
                route = reg.routes.get(path) or reg.routes.get(path.split("?")[0])
                if route is None:
                    route = Route(status=404, body=b'{"errors":[{"code":"NOT_FOUND"}]}')
                if route.handler:
                    route = route.handler(self) or route
                if route.delay:
                    reg.stopping.wait(route.delay)
                size = route.size if route.size is not None else len(route.body)
                sent = 0
                end = "complete"
                try:
                    self.send_response(route.status)
                    for k, v in route.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    if self.command == "HEAD":
                        self._record(path, route.status, 0, size, "complete")
                        return
                    deadline = time.monotonic() + MAX_SECONDS
                    chunk = 1 if route.rate and route.rate < 64 else 64 << 10
                    while sent < size:
                        if reg.stopping.is_set() or time.monotonic() >= deadline:
                            end = "stopping" if reg.stopping.is_set() else "deadline"
                            break
                        n = min(chunk, size - sent)
                        if route.size is not None:
                            data = (route.fill * (n // len(route.fill) + 1))[:n]
                        else:
                            data = route.body[sent:sent + n]
                        self.wfile.write(data)
                        self.wfile.flush()
                        sent += n
                        if route.rate and sent < size and self._peer_closed_within(n / route.rate):
                            end = "peer closed"
                            break
                except (BrokenPipeError, ConnectionResetError):
                    end = "peer closed"
                except OSError as e:
                    end = "write failed: " + (e.strerror or str(e))
                self._record(path, route.status, sent, size, end)
                if sent < size:
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = handle_any

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    @property
    def url(self):
        return "http://" + self.addr

    def stop(self):
        self.stopping.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def busybox_layer():
    """(digest, gzip data, diff_id) of the busybox layer that tests/lib/oci_image.py builds."""
    import oci_image
    layer = oci_image.Layer(oci_image.busybox_tar(), "gzip")
    return layer.digest, layer.blob, layer.diff_id


def scenario(reg, name):
    if name == "slow-blob":
        # One layer (the busybox layer) that trickles at 1 byte/s.
        d, data, diff = busybox_layer()
        s = reg.add_image("slow/img", "1", [(d, data, diff)], blob_routes={d: {"rate": 1}})
        return {"image": "slow/img:1", **s}
    if name == "owner-404":
        # One layer, shared by two repositories of this host: evil/x answers its blob GET
        # with 404 after 1 s, good/y serves it.
        d, data, diff = busybox_layer()
        reg.add_image("good/y", "1", [(d, data, diff)])
        s = reg.add_image("evil/x", "1", [(d, data, diff)], blob_routes={d: {"status": 404, "body": b"{}", "delay": 1.0}})
        return {"evil": "evil/x:1", "good": "good/y:1", **s}
    raise SystemExit(f"unknown scenario {name!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    args = ap.parse_args()
    reg = HostileRegistry().start()
    info = scenario(reg, args.scenario)
    info.pop("manifest_body", None)
    print(json.dumps({"addr": reg.addr, **info}), flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    # Per-path counters for the test, then stop.
    reg.stop()


if __name__ == "__main__":
    main()
