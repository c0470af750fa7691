#!/usr/bin/python3
"""A real kubelet (v1.26.1, standalone: static pods, no API server) running pods through
berthd, on this machine.

The kubelet is not packaged by Debian and builds only from a fetched source snapshot
(docs/conformance.md); it is looked up, never built here: KUBELET (default
/var/tmp/berth-anchors/kubelet/kubelet). Without it the run reports "skipped" (exit 77).

What it checks: a static pod (an init container, a web server with readiness and liveness
probes, an emptyDir) reaches Running/Ready through berthd, berth-shim and berth on a
berth-bridge network; the kubelet's container records match berthd's; exec and
port-forward through the kubelet's own server (https://127.0.0.1:10250, the debugging
handlers: the kubelet calls berthd's Exec/PortForward and proxies the client's upgraded
connection to berthd's stream server) over WebSocket (Debian's python3-websocket) and SPDY
(tests/cri/spdy_client, built here with Debian's Go and golang-github-docker-spdystream-dev);
a container that exits is restarted with the kubelet's back-off; removing the manifest
removes the pod.
The kubelet's side effects on the host (sysctls, iptables chains, directories) are undone.

    tests/conformance/kubelet_berthd.py [--keep]
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "agent"))
import agent_lib as L  # noqa: E402  (Berthd, Cri, Registry, oci_image, wait_for)
import stream_clients  # noqa: E402
from stream_clients import build_spdy_client, run_spdy  # noqa: E402

BUILD = os.path.join(REPO, "build")
KUBELET = os.environ.get("KUBELET", "/var/tmp/berth-anchors/kubelet/kubelet")
BRIDGE, SUBNET = "berth-kub0", "10.231.97.0/24"
SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory")
KUBE_CHAINS = ("KUBE-FIREWALL", "KUBE-MARK-DROP", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", "KUBE-KUBELET-CANARY",
               "KUBE-IPTABLES-HINT")

MANIFEST = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": "default"},
    "spec": {
        "terminationGracePeriodSeconds": 2,
        "initContainers": [{"name": "init", "image": "docker.io/demo/web:1",
                            "command": ["sh", "-c", "echo hello from the kubelet over berthd > /www/index.html"],
                            "volumeMounts": [{"name": "www", "mountPath": "/www"}]}],
        "containers": [
            {"name": "web", "image": "docker.io/demo/web:1", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
             "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
             "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
             "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
             "volumeMounts": [{"name": "www", "mountPath": "/www", "readOnly": True}]},
            {"name": "crashy", "image": "docker.io/demo/web:1", "command": ["sh", "-c", "sleep 1; exit 3"]},
        ],
        "volumes": [{"name": "www", "emptyDir": {}}],
    },
}


def step(msg):
    print(f"== {msg}", flush=True)


def kubelet_config(path, manifests):
    with open(path, "w") as f:
        json.dump({"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
                   "staticPodPath": manifests, "cgroupDriver": "cgroupfs", "cgroupsPerQOS": True,
                   "cgroupRoot": "/berth-kubelet", "failSwapOn": False, "registerNode": False,
                   "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                   "authorization": {"mode": "AlwaysAllow"}, "readOnlyPort": 10255, "port": 10250,
                   "address": "127.0.0.1", "healthzPort": 10248, "fileCheckFrequency": "1s",
                   "syncFrequency": "5s", "imageGCHighThresholdPercent": 100, "evictionHard": {},
                   "enforceNodeAllocatable": [], "resolvConf": "/etc/resolv.conf"}, f)


KUBELET_API = "127.0.0.1:10250"  # the kubelet's server: https, self-signed, anonymous + AlwaysAllow


def kubelet_path(kind, container=None, command=(), **flags):
    """/exec/default/hello-node1/web?command=..&input=1.. (the kubelet's own query names)."""
    path = f"/{kind}/default/hello-node1" + (f"/{container}" if container else "")
    query = [("command", c) for c in command] + [(k, "1" if v is True else str(v)) for k, v in flags.items()]
    return path + ("?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else "")


def kubelet_ws(path, to_send=(), protocol="v4.channel.k8s.io"):
    """A WebSocket session through the kubelet; returns ({channel: bytes}, messages in order)."""
    return stream_clients.ws_session(f"wss://{KUBELET_API}{path}", protocol, to_send,
                                     sslopt={"cert_reqs": ssl.CERT_NONE, "check_hostname": False})


def check_streaming(work, berthd_log):
    """Exec and port-forward through the kubelet's server, which calls berthd's Exec and
    PortForward and proxies the upgraded connection to the URL berthd returned."""
    log_start = os.path.getsize(berthd_log)
    # WebSocket v4: the server's first message is an empty one on stdout; the status is JSON on 3.
    got, order = kubelet_ws(kubelet_path("exec", "web", ["echo", "hello through the kubelet"], output=True,
                                         error=True))
    assert order[0] == b"\x01", order
    assert got.get(1) == b"hello through the kubelet\n", got
    assert got.get(3) == b'{"metadata":{},"status":"Success"}', got
    print(f"   wss exec echo (v4.channel.k8s.io): stdout {got[1]!r}, status {got[3].decode()}")
    # stdin (v4 has no stdin-close signal: the command reads one line), stderr, exit code.
    got, _ = kubelet_ws(kubelet_path("exec", "web", ["sh", "-c", 'read l; echo "got $l"; echo oops >&2; exit 3'],
                                     input=True, output=True, error=True), [(0, b"ping\n")])
    st = json.loads(got.get(3, b"{}"))
    assert got.get(1) == b"got ping\n" and got.get(2) == b"oops\n", got
    assert st.get("reason") == "NonZeroExitCode" and st["details"]["causes"] == [{"reason": "ExitCode",
                                                                                  "message": "3"}], st
    print(f"   wss exec with input: stdout {got[1]!r}, stderr {got[2]!r}, status {st['status']}/{st['reason']}, "
          f"exit code {st['details']['causes'][0]['message']}")
    got, _ = kubelet_ws(kubelet_path("exec", "web", ["busybox", "tty"], input=True, output=True, tty=True))
    assert got.get(1, b"").startswith(b"/dev/pts/") and json.loads(got[3])["status"] == "Success", got
    print(f"   wss exec tty=1: stdout {got[1]!r}")

    client = build_spdy_client(work)
    url = f"https://{KUBELET_API}" + kubelet_path("exec", "web", ["sh", "-c", "cat; exit 3"], input=True, output=True,
                                                  error=True)
    data = b"over spdy\n" + bytes(range(256)) * 400  # 100 KiB each way: many frames
    rc, out, err, status = run_spdy(client, "exec", url, "-stdin", input=data)
    st = json.loads(status or b"{}")
    assert rc == 1 and out == data and st.get("reason") == "NonZeroExitCode", (rc, len(out), err, status)
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}], st
    print(f"   SPDY exec sh -c 'cat; exit 3', {len(data)} bytes in: {len(out)} bytes back, identical; "
          f"exit code {st['details']['causes'][0]['message']}")
    url = f"https://{KUBELET_API}" + kubelet_path("exec", "web", ["echo", "-n", "hello"], output=True, error=True)
    rc, out, err, status = run_spdy(client, "exec", url)
    assert (rc, out, status) == (0, b"hello", b'{"metadata":{},"status":"Success"}'), (rc, out, err, status)
    print(f"   SPDY exec echo -n hello: {out!r}, status {status.decode()}")

    # Port-forward to the web container's httpd (8080): SPDY (portforward.k8s.io), three
    # connections on one session; then WebSocket with the port in the query.
    url = f"https://{KUBELET_API}" + kubelet_path("portForward")
    request = b"GET / HTTP/1.0\r\n\r\n"
    rc, out, err, _ = run_spdy(client, "portforward", url, "8080", "3", input=request)
    assert rc == 0 and out.count(b"HTTP/1.") == 3, (rc, out, err)
    assert out.count(b"hello from the kubelet over berthd") == 3 and b"error stream" not in out, out
    status_line, body = out.split(b"\r\n")[0].decode(), out.split(b"\r\n\r\n")[1].split(b"HTTP/")[0].strip()
    print(f"   SPDY port-forward :8080, 3 connections: {status_line!r} x3, body {body.decode()!r}")
    got, order = kubelet_ws(kubelet_path("portForward", port=8080), [(0, request)])
    assert order[:2] == [b"\x00\x90\x1f", b"\x01\x90\x1f"], order[:2]
    assert got[0].startswith(b"\x90\x1fHTTP/1.") and b"hello from the kubelet over berthd" in got[0], got
    assert got[1] == b"\x90\x1f", got  # no error
    status_line = got[0][2:].split(b"\r\n")[0].decode()
    print(f"   wss port-forward ?port=8080 (first bytes: the port, little-endian): {status_line!r}")

    with open(berthd_log, "rb") as f:
        f.seek(log_start)
        lines = f.read().decode(errors="replace").splitlines()
    sessions = [ln for ln in lines if "stream session" in ln]
    bad = [ln for ln in lines if "level=warn" in ln or "level=error" in ln or '"level":"warn' in ln
           or '"level":"error' in ln]
    print(f"   berthd log: {sum('stream session started' in ln for ln in sessions)} sessions started, "
          f"{sum('stream session ended' in ln for ln in sessions)} ended, {len(bad)} warnings/errors")
    for ln in bad:
        print("     ", ln)
    assert not bad


def pods_from_kubelet():
    with urllib.request.urlopen("http://127.0.0.1:10255/pods", timeout=5) as r:
        return json.load(r)["items"]


def main():
    if os.geteuid() != 0:
        print("kubelet: skipped: needs root")
        return 77
    if not os.access(KUBELET, os.X_OK):
        print(f"kubelet: skipped: no kubelet at {KUBELET} (docs/conformance.md says how to build it)")
        return 77
    work = tempfile.mkdtemp(prefix="berth-kubelet.")
    saved = {k: subprocess.run(["sysctl", "-n", k], capture_output=True, text=True).stdout.strip() for k in SYSCTLS}
    made_dirs = [d for d in ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers") if not os.path.exists(d)]
    registry = berthd = kubelet = cri = None
    try:
        step("registry with an image built here; berthd with berth and berth-bridge")
        registry = L.Registry(workdir=os.path.join(work, "registry"))
        registry.start()
        web = L.oci_image.Image([L.oci_image.Layer(L.oci_image.busybox_tar(
            lambda t: [t.symlink(f"bin/{a}", "busybox") for a in ("httpd", "wget")]), "gzip")])
        L.oci_image.push(web, registry.addr, "demo/web:1")
        conf, bin_dir = os.path.join(work, "cni", "net.d"), os.path.join(work, "cni", "bin")
        os.makedirs(conf)
        os.makedirs(bin_dir)
        os.symlink(os.path.join(BUILD, "cni", "berth-bridge"), os.path.join(bin_dir, "berth-bridge"))
        with open(os.path.join(conf, "10-kubelet.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": "kubelet-test", "plugins": [
                {"type": "berth-bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "dataDir": os.path.join(work, "cni", "ipam"),
                          "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}, f)
        berthd = L.Berthd(L.Path(work) / "berthd", registry.addr, L.Path(conf), bin_dir,
                          L.Path(tempfile.mkdtemp(prefix="bk", dir="/run")))
        berthd.start()
        cri = L.Cri(berthd.sock, L.Path(work) / "pycri")
        berthd.wait_ready(cri)

        step(f"kubelet {subprocess.run([KUBELET, '--version'], capture_output=True, text=True).stdout.strip()}, "
             f"standalone, CRI endpoint unix://{berthd.sock}")
        manifests = os.path.join(work, "manifests")
        os.makedirs(manifests)
        # The kubelet wants its cgroupRoot in every hierarchy (cgroup v1 on this hybrid host).
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if f[f.index("-") + 1] in ("cgroup", "cgroup2"):
                os.makedirs(os.path.join(f[4], "berth-kubelet"), exist_ok=True)
        kubelet_config(os.path.join(work, "kubelet.json"), manifests)
        klog = open(os.path.join(work, "kubelet.log"), "wb")
        kubelet = subprocess.Popen([KUBELET, "--config", os.path.join(work, "kubelet.json"),
                                    f"--container-runtime-endpoint=unix://{berthd.sock}",
                                    "--root-dir", os.path.join(work, "kubelet-root"), "--hostname-override", "node1",
                                    "--cert-dir", os.path.join(work, "kubelet-pki"),
                                    "--v=2"], stdout=klog, stderr=klog, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        with open(os.path.join(manifests, "hello.json"), "w") as f:
            json.dump(MANIFEST, f)

        def ready():
            for p in pods_from_kubelet():
                if p["metadata"]["name"] == "hello-node1":
                    conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
                    if conds.get("Ready") == "True":
                        return p
            return None
        pod = L.wait_for(ready, timeout=120, what="the kubelet's pod to be Ready")
        print(f"   pod hello-node1 Ready after {time.monotonic() - t0:.2f} s; IP {pod['status'].get('podIP')}")
        for c in pod["status"]["containerStatuses"] + pod["status"].get("initContainerStatuses", []):
            print(f"   container {c['name']}: {list(c['state'])[0]}, restarts {c['restartCount']}, "
                  f"{c.get('containerID', '')[:24]}")
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/", timeout=5) as r:
            print("   GET / ->", r.read().decode().strip())

        step("what berthd runs for the kubelet")
        sandboxes = cri.sandboxes()
        running = cri.running()
        print(f"   {len(sandboxes)} sandbox, {len(running)} running containers: "
              + ", ".join(sorted(c.metadata.name for c in running)))
        assert len(sandboxes) == 1 and sandboxes[0].metadata.name == "hello-node1"

        step("exec and port-forward through the kubelet's server (https://127.0.0.1:10250) to berthd's stream server")
        check_streaming(work, str(berthd.log))

        step("a container that exits is restarted with the kubelet's back-off")
        L.wait_for(lambda: any(c["name"] == "crashy" and c["restartCount"] >= 2
                               for p in pods_from_kubelet() for c in p["status"]["containerStatuses"]),
                   timeout=90, what="crashy's restarts")
        print("   crashy restarted >= 2 times (exit code 3 seen by the kubelet)")

        step("manifest removed: the kubelet stops and removes the pod")
        t0 = time.monotonic()
        os.unlink(os.path.join(manifests, "hello.json"))
        L.wait_for(lambda: cri.running() == [], timeout=120, what="the pod's containers to stop")
        print(f"   containers gone after {time.monotonic() - t0:.2f} s; sandboxes now: "
              f"{[s.state for s in cri.sandboxes()]}")
        return 0
    finally:
        if kubelet:
            kubelet.send_signal(signal.SIGTERM)
            kubelet.wait(30)
        if berthd:
            if cri:
                cri.remove_everything()
            berthd.stop()
            shutil.rmtree(str(berthd.state), ignore_errors=True)
        if registry:
            registry.stop()
        for k, v in saved.items():
            subprocess.run(["sysctl", "-q", "-w", f"{k}={v}"])
        for tool in ("iptables", "ip6tables"):
            for chain, table in [(c, "filter") for c in ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY")] + \
                                [(c, "nat") for c in KUBE_CHAINS] + [(c, "mangle") for c in KUBE_CHAINS]:
                for parent in ("INPUT", "OUTPUT", "POSTROUTING", "PREROUTING"):
                    while subprocess.run([tool, "-t", table, "-D", parent, "-j", chain], capture_output=True).returncode == 0:
                        pass
                subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
                subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], stderr=subprocess.DEVNULL)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            m = line.split()[4]
            if m.startswith(work):
                subprocess.run(["umount", "-l", m])
        for d in made_dirs:
            shutil.rmtree(d, ignore_errors=True)
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            top = os.path.join(f[4], "berth-kubelet")
            if f[f.index("-") + 1] in ("cgroup", "cgroup2") and os.path.isdir(top):
                for dirpath, _, _ in sorted(os.walk(top, topdown=False), key=lambda x: -len(x[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
