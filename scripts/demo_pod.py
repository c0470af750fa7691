"""The main job's pod: the whole Berth stack end to end, offline.

  image built here from busybox-static -> local registry (docker-registry on 127.0.0.1)
  static pod manifest -> berthlet -> CRI (berthd) -> berth-shim -> berth (OCI runtime)
  pod network: berth-bridge (CNI) on a private bridge

`--endpoint containerd` runs the same pod through containerd 1.6's CRI instead, with berth
as containerd's OCI runtime (the interop path). Run by scripts/demo.sh inside a private
mount namespace; everything it starts is stopped and everything it makes is removed at
the end, also on failure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "agent"))
import agent_lib as L  # noqa: E402  (Containerd, Cri, Berthlet, Registry, oci_image)

BUILD = Path(os.environ.get("BERTH_BUILD", REPO / "build"))
BERTH = os.environ.get("BERTH", str(BUILD / "runtime" / "berth"))
BERTHCTL = os.environ.get("BERTHCTL", str(BUILD / "ctl" / "berthctl"))
BRIDGE_PLUGIN = os.environ.get("BERTH_BRIDGE", str(BUILD / "cni" / "berth-bridge"))
L.BERTHLET = os.environ.get("BERTHLET", str(BUILD / "agent" / "berthlet"))
os.environ.setdefault("BERTHD", str(BUILD / "cri" / "berthd"))
os.environ.setdefault("BERTH", BERTH)
BRIDGE, SUBNET = "berth-demo0", "10.231.99.0/24"

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: write-page
    image: demo/web:1
    command: ["sh", "-c", "echo \\"hello from pod $POD_NAME ($POD_IP), served by busybox httpd under berth\\" > /www/index.html"]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    volumeMounts: [{name: www, mountPath: /www}]
  containers:
  - name: web
    image: demo/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 5}
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    volumeMounts: [{name: www, mountPath: /www, readOnly: true}]
  volumes:
  - {name: www, emptyDir: {medium: Memory}}
"""


def step(msg):
    print(f"== {msg}", flush=True)


def web_image():
    """busybox-static plus the applets the pod uses."""
    def applets(t):
        for a in ("httpd", "hostname", "wget", "ps"):
            t.symlink(f"bin/{a}", "busybox")
    base = L.oci_image.Layer(L.oci_image.busybox_tar(applets), "gzip")
    return L.oci_image.Image([base], cmd=["sh"])


def write_cni_conf(conf_dir: Path, bin_dir: Path, ipam_dir: Path):
    conf_dir.mkdir(parents=True)
    bin_dir.mkdir(parents=True)
    # containerd 1.6 takes one CNI bin dir: berth-bridge and the reference loopback.
    os.symlink(BRIDGE_PLUGIN, bin_dir / "berth-bridge")
    os.symlink("/usr/lib/cni/loopback", bin_dir / "loopback")
    (conf_dir / "10-berth.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "berth-demo",
        "plugins": [
            {"type": "berth-bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "loopback"},
        ]}, indent=1))


def start_endpoint(kind, root, registry):
    if kind == "berthd":
        step("berthd (CRI) with berth-shim, berth as its OCI runtime and berth-bridge as its CNI plugin")
        ep = L.Berthd(root / "berthd", registry.addr, root / "cni" / "net.d", str(root / "cni" / "bin"),
                      Path(tempfile.mkdtemp(prefix="bd", dir="/run")))
        runtime_root = ep.state / "runtime" / "berth"
    else:
        step("containerd (CRI) with berth as its OCI runtime and berth-bridge as its CNI plugin")
        ep = L.Containerd(root / "containerd", registry.addr, root / "cni" / "net.d",
                          "docker.io/berth/pause:1", runtime_binary=BERTH, cni_bin_dir=str(root / "cni" / "bin"))
        runtime_root = ep.runtime_root / "k8s.io"
    ep.start()
    cri = L.Cri(ep.sock, root / "pycri")
    ep.wait_ready(cri)
    v = cri.version()
    print(f"   {v.runtime_name} {v.runtime_version} serving CRI {v.runtime_api_version} on {ep.sock}")
    return ep, cri, runtime_root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", choices=["berthd", "containerd"], default="berthd")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="berth-demo-pod."))
    registry = endpoint = berthlet = cri = None
    try:
        step("local registry on 127.0.0.1, image built from busybox-static and pushed")
        registry = L.Registry(workdir=str(root / "registry"))
        registry.start()
        L.oci_image.push(web_image(), registry.addr, "demo/web:1")
        pause = L.oci_image.Image([L.oci_image.Layer(L.oci_image.busybox_tar(), "gzip")],
                                  cmd=["/bin/sleep", "2147483647"])
        L.oci_image.push(pause, registry.addr, "berth/pause:1")
        print(f"   docker.io/demo/web:1 and docker.io/berth/pause:1 served by {registry.addr}")

        write_cni_conf(root / "cni" / "net.d", root / "cni" / "bin", root / "cni" / "ipam")
        endpoint, cri, runtime_root = start_endpoint(args.endpoint, root, registry)

        step("berthlet watching a static pod manifest directory")
        berthlet = L.Berthlet(root / "berthlet", endpoint.sock, "/berth-demo")
        berthlet.start()
        t0 = time.monotonic()
        berthlet.write("hello.yaml", MANIFEST)
        print(f"   wrote {berthlet.manifests / 'hello.yaml'}")
        pod = berthlet.wait_pod("hello", lambda p: L.condition(p, "Ready"), timeout=120,
                                what="pod hello to be Ready")
        ready_s = time.monotonic() - t0
        st = pod["status"]
        print(f"   pod {pod['metadata']['name']}: phase {st['phase']}, IP {st.get('podIP')}, "
              f"Ready after {ready_s:.2f} s (image pull included)")
        for c in st.get("initContainerStatuses", []) + st.get("containerStatuses", []):
            state = next(iter(c["state"]))
            print(f"   container {c['name']}: {state} {c['state'][state].get('reason', '')}".rstrip()
                  + f", ready={c['ready']}, id {c.get('containerID', '')[:28]}")

        step("the pod answers over the berth-bridge network")
        with urllib.request.urlopen(f"http://{st['podIP']}:8080/", timeout=5) as r:
            print("   GET / ->", r.read().decode().strip())

        step(f"the containers are berth's (berth --root {runtime_root} list)")
        out = subprocess.run([BERTH, "--root", str(runtime_root), "list", "--format", "json"],
                             capture_output=True, text=True, check=True)
        for c in json.loads(out.stdout):
            print(f"   {c['id'][:12]}  pid {c['pid']:<7} {c['status']:<8} owner {c['owner']}  "
                  f"created {c['created'][:19]}")
        if args.endpoint == "berthd":
            shims = L.pids_with_arg(str(endpoint.state / "shims"))
            rss = sum(int(next(l for l in open(f"/proc/{p}/status") if l.startswith("VmRSS")).split()[1])
                      for p in shims)
            print(f"   monitors: {len(shims)} berth-shim process(es), {rss} KiB RSS in all; no pause process "
                  f"(the pod's namespaces are pinned)")

        step(f"the operator's view through the CRI (berthctl -r unix://{endpoint.sock} pods; ps -a)")
        for verb in (["pods"], ["ps", "-a"]):
            out = subprocess.run([BERTHCTL, "-r", f"unix://{endpoint.sock}", *verb],
                                 capture_output=True, text=True, check=True, timeout=30)
            print("".join(f"   {line}\n" for line in out.stdout.splitlines()), end="")

        step("manifest removed: berthlet stops and removes the pod")
        t0 = time.monotonic()
        berthlet.remove("hello.yaml")
        L.wait_for(lambda: berthlet.pods() == [] and cri.sandboxes() == [], timeout=60,
                   what="the pod to go away")
        print(f"   pod gone after {time.monotonic() - t0:.2f} s; sandboxes left: {len(cri.sandboxes())}")
        return 0
    finally:
        if berthlet:
            berthlet.stop()
        if cri:
            cri.remove_everything()
        if endpoint:
            endpoint.stop()
            if args.endpoint == "berthd":
                subprocess.run(["rm", "-rf", str(endpoint.state)])
        if registry:
            registry.stop()
        subprocess.run(["ip", "link", "del", BRIDGE], stderr=subprocess.DEVNULL)
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mnt = line.split()[4]
            if mnt.startswith(str(root) + "/"):
                subprocess.run(["umount", "-l", mnt])
        remove_cgroups("berth-demo")
        subprocess.run(["rm", "-rf", str(root)])


def remove_cgroups(name):
    """The pods' cgroup root in every hierarchy (only ours: it is named after the demo)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        if f[f.index("-") + 1] not in ("cgroup", "cgroup2"):
            continue
        top = Path(f[4]) / name
        if top.is_dir():
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                d.rmdir()
            top.rmdir()


if __name__ == "__main__":
    sys.exit(main())
