#!/usr/bin/python3
"""A misbehaving HTTP front for a registry, to test the client's retries and redirects.

    flaky_proxy.py --upstream 127.0.0.1:5000

Prints {"addr": "127.0.0.1:<port>"} and serves until stdin closes. Behaviour:
  - the first GET of every manifest answers 503 (the client must retry with backoff);
  - every blob GET answers 307 to /_redirect/<path> on this proxy (the client must follow);
  - the first GET of every redirected blob sends half of the body, then drops the
    connection (the client must resume with a Range request);
  - Range requests are passed upstream as they are.
GET /_stats answers the per-path counters as JSON.
"""

import argparse
import http.client
import http.server
import json
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    args = ap.parse_args()
    lock = threading.Lock()
    seen = {}

    def bump(key):
        with lock:
            seen[key] = seen.get(key, 0) + 1
            return seen[key]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _upstream(self, method, path):
            conn = http.client.HTTPConnection(args.upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization", "range")}
            conn.request(method, path, headers=headers)
            return conn, conn.getresponse()

        def _send(self, status, headers, body):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self):
            path = self.path
            if path == "/_stats":
                with lock:
                    body = json.dumps(seen).encode()
                return self._send(200, [("Content-Type", "application/json")], body)
            if "/manifests/" in path and self.command == "GET" and bump("manifest " + path) == 1:
                return self._send(503, [], b"try again\n")
            if "/blobs/" in path and not path.startswith("/_redirect/"):
                bump("redirect " + path)
                return self._send(307, [("Location", "/_redirect" + path)], b"")
            if path.startswith("/_redirect/"):
                path = path[len("/_redirect"):]
                n = bump("blob " + path + (" range" if "Range" in self.headers else ""))
                conn, resp = self._upstream(self.command, path)
                body = resp.read()
                conn.close()
                if n == 1 and "Range" not in self.headers and resp.status == 200 and len(body) > 1:
                    # Promise the whole body, deliver half, hang up.
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                return self._send(resp.status, resp.getheaders(), body)
            conn, resp = self._upstream(self.command, path)
            body = resp.read()
            conn.close()
            return self._send(resp.status, resp.getheaders(), body)

        do_GET = do_HEAD = handle_any

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"addr": "127.0.0.1:%d" % server.server_address[1]}), flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
