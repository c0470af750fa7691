"""Hostile input: manifest fields that are paths, symlinks planted by containers in their
volumes, YAML alias bombs, floods of status connections, a runtime that is not there or
not ready. Each test fails on a berthlet without the matching fix."""
import contextlib
import os
import resource
import socket
import threading
import time
from concurrent import futures
from pathlib import Path

import agent_lib as L
from agent_lib import container, cstatus, pod_manifest, running


def mounts_under(path):
    prefix = str(path) + "/"
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix)]


def waiting(pod, name):
    cs = cstatus(pod, name)
    return cs and cs["state"].get("waiting") or {}


# ---- names that become paths ------------------------------------------------------------


def test_uid_that_is_a_path_is_refused_and_nothing_outside_is_touched(berthlet):
    # <rootDir>/pods/<uid> with uid ../../victim is <berthlet's dir>/victim
    victim = berthlet.root / "victim"
    victim.mkdir()
    (victim / "precious").write_text("data\n")
    doc = pod_manifest("evil", [container("app", L.SLEEPER, volumeMounts=[{"name": "v", "mountPath": "/v"}])],
                       volumes=[{"name": "v", "emptyDir": {}}])
    doc["metadata"]["uid"] = "../../victim"
    berthlet.write("evil.yaml", doc)
    berthlet.write("good.yaml", pod_manifest("good", [container("app", L.SLEEPER)]))
    st = L.wait_for(lambda: "error" in berthlet.manifests_status().get("evil.yaml", {}) and berthlet.manifests_status(),
                    what="the manifest error")
    err = st["evil.yaml"]["error"]
    assert err.startswith(str(berthlet.manifests / "evil.yaml") + ": metadata.uid: \"../../victim\" is not a valid UID"), err
    berthlet.wait_pod("good", lambda p: running(p, "app"))
    assert berthlet.pod("evil") is None
    assert not (victim / "volumes").exists()
    berthlet.remove("evil.yaml")
    time.sleep(2)
    assert (victim / "precious").read_text() == "data\n"
    assert sorted(os.listdir(victim)) == ["precious"]


def test_orphan_with_a_uid_that_is_a_path_is_removed_without_touching_its_directory(berthlet_factory, cri):
    """A sandbox in the runtime that looks like one of berthlet's (config.source=file) but whose
    UID label is a path: berthlet stops and removes it through the CRI, and removes nothing
    on the node by that UID."""
    b = berthlet_factory("orphan-uid")
    victim = b.root / "victim2"
    victim.mkdir(exist_ok=True)  # the root outlives the run for the other CRI endpoint
    (victim / "precious").write_text("data\n")
    (b.rootdir / "pods").mkdir(parents=True, exist_ok=True)
    pb = cri.pb
    uid = "../../victim2"  # berthlet reads the UID from this label
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="ghost", uid="ghost-uid", namespace="default", attempt=0),
        labels={"io.kubernetes.pod.uid": uid, "io.kubernetes.pod.name": "ghost", "io.kubernetes.pod.namespace": "default"},
        annotations={"kubernetes.io/config.source": "file"},
        log_directory=str(b.logs / "ghost"),
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.NODE))))
    sid = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id
    assert sid
    b.start()
    L.wait_for(lambda: cri.sandboxes(uid) == [], timeout=60, what="the orphan to be removed")
    L.wait_for(lambda: "not valid" in b.log(), what="the refusal in the log")
    assert (victim / "precious").read_text() == "data\n"


# ---- subPath -----------------------------------------------------------------------------


def test_subpath_through_a_symlink_planted_by_a_container_is_refused(berthlet, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    # The init container plants a symlink to a host path in the emptyDir; berthlet resolves
    # the app's subPath on the host, as root.
    plant = container("plant", f"ln -s {outside} /vol/evil && ls -l /vol",
                      volumeMounts=[{"name": "vol", "mountPath": "/vol"}])
    app = container("app", L.SLEEPER, volumeMounts=[{"name": "vol", "mountPath": "/x", "subPath": "evil/sub"}])
    ok = container("ok", "echo hi > /y/f; " + L.SLEEPER,
                   volumeMounts=[{"name": "vol", "mountPath": "/y", "subPath": "fine/dir"}])
    berthlet.write("sub.yaml", pod_manifest("sub", [app, ok], init=[plant], volumes=[{"name": "vol", "emptyDir": {}}]))
    pod = berthlet.wait_pod("sub", lambda p: waiting(p, "app").get("reason") == "CreateContainerConfigError"
                            and running(p, "ok"), what="app refused, ok running")
    msg = waiting(pod, "app")["message"]
    assert 'container "app": subPath "evil/sub" of volume "vol"' in msg and '"evil" is a symlink' in msg, msg
    assert not (outside / "sub").exists(), "berthlet made a directory outside the volume"
    assert os.listdir(outside) == []
    uid = pod["metadata"]["uid"]
    pod_dir = berthlet.rootdir / "pods" / uid
    vol = pod_dir / "volumes" / "kubernetes.io~empty-dir" / "vol"
    L.wait_for(lambda: (vol / "fine" / "dir" / "f").exists(), what="the write through the good subPath")
    # the runtime got a bind under berthlet's root, not a path inside the volume
    assert str(pod_dir / "volume-subpaths" / "vol" / "ok" / "0") in mounts_under(pod_dir)
    berthlet.remove("sub.yaml")
    L.wait_for(lambda: berthlet.pod("sub") is None, what="the pod to go")
    assert mounts_under(berthlet.rootdir) == []
    assert not pod_dir.exists()


# ---- YAML --------------------------------------------------------------------------------

# ~400 bytes; with every alias expanded, annotation g alone is 9^7 (4.8 million) strings:
# some 300 MB as JSON in memory, before any validation could look at it.
ALIAS_BOMB = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\n"
              "  annotations:\n    a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
              + "".join(f"    {c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdef", "bcdefg"))
              + "spec:\n  containers: [{name: c, image: busybox}]\n")


def test_yaml_alias_bomb_is_refused_and_memory_stays_flat(berthlet):
    assert len(ALIAS_BOMB) < 615, len(ALIAS_BOMB)
    time.sleep(1)
    before = berthlet.memory_kib("VmHWM")
    for i in range(3):
        # a different file each time: each one is read and refused
        berthlet.write(f"bomb{i}.yaml", ALIAS_BOMB + f"# {i}\n")
        st = L.wait_for(lambda: "error" in berthlet.manifests_status().get(f"bomb{i}.yaml", {})
                        and berthlet.manifests_status(), timeout=60, what="the bomb's error")
        assert "expands to more than 200000 nodes (YAML aliases?)" in st[f"bomb{i}.yaml"]["error"]
    grown = berthlet.memory_kib("VmHWM") - before
    assert grown < 16 * 1024, f"berthlet's peak RSS grew by {grown} KiB"
    # deep nesting and oversized files are refused the same way; berthlet keeps serving
    berthlet.write("deep.yaml", "kind: Pod\nx: " + "[" * 100000 + "]" * 100000 + "\n")
    berthlet.write("big.yaml", "kind: Pod\n#" + "x" * (1 << 20) + "\n")
    berthlet.write("good.yaml", pod_manifest("good", [container("app", L.SLEEPER)]))
    berthlet.wait_pod("good", lambda p: running(p, "app"))
    st = L.wait_for(lambda: all("error" in berthlet.manifests_status().get(f, {}) for f in ("deep.yaml", "big.yaml"))
                    and berthlet.manifests_status(), what="errors of deep.yaml and big.yaml")
    assert "files larger than 1048576 bytes (1 MiB) are refused" in st["big.yaml"]["error"]
    assert berthlet.memory_kib("VmHWM") - before < 32 * 1024


# ---- status endpoint ---------------------------------------------------------------------


def test_idle_status_connections_do_not_stop_manifest_handling(berthlet_factory):
    # berthlet as a unit without LimitNOFILE runs it: 1024 file descriptors in all.
    b = berthlet_factory("conn-flood").start(nofile=1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    socks = []
    try:
        for _ in range(2000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", b.port))
            socks.append(s)
        time.sleep(2)
        fds = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
        assert fds < 300, f"berthlet holds {fds} fds"
        b.write("p.yaml", pod_manifest("p", [container("app", L.SLEEPER)]))
        b.wait_pod("p", lambda p: running(p, "app"), timeout=60)
        assert b.proc.poll() is None
    finally:
        for s in socks:
            s.close()
    L.wait_for(lambda: b.get("/healthz") == "ok", timeout=30, what="/healthz once the clients are gone")
    # refused connections are logged, but not once per connection
    assert b.log().count("status endpoint:") < 20, b.log()[-3000:]


# ---- the runtime's health ----------------------------------------------------------------


def test_wrong_runtime_endpoint_fails_healthz_and_is_logged(berthlet_factory, tmp_path):
    b = berthlet_factory("wrong-endpoint")
    b.endpoint = tmp_path / "no-such-runtime.sock"
    b.start(wait=False)
    code, body = L.wait_for(lambda: (lambda r: r if r[0] != 0 else None)(b.get_status("/healthz")),
                            what="/healthz to answer")
    assert code == 503, body
    assert f"[-]runtime failed: runtime unix://{b.endpoint} unavailable" in body, body
    assert "[-]syncloop failed: no successful relist of the runtime yet" in body, body
    L.wait_for(lambda: "unavailable (no pod can run until it answers)" in b.log(), what="the error in the log")
    assert "berthlet ready" not in b.log()
    assert "is not reachable" in b.log()


class FakeRuntime:
    """A CRI endpoint that answers Version, Status (with conditions set by the test) and the
    two list calls, and nothing else."""

    def __init__(self, cri, sock):
        import grpc
        import api_pb2_grpc
        pb = cri.pb
        self.ready = {"RuntimeReady": False, "NetworkReady": True}
        fake = self

        class Servicer(api_pb2_grpc.RuntimeServiceServicer):
            def Version(self, request, context):
                return pb.VersionResponse(version="0.1.0", runtime_name="fake", runtime_version="1",
                                          runtime_api_version="v1")

            def Status(self, request, context):
                conds = [pb.RuntimeCondition(type=t, status=v, reason="" if v else "FakeNotReady",
                                             message="" if v else "the test says so")
                         for t, v in fake.ready.items()]
                return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conds))

            def ListPodSandbox(self, request, context):
                return pb.ListPodSandboxResponse()

            def ListContainers(self, request, context):
                return pb.ListContainersResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(Servicer(), self.server)
        self.server.add_insecure_port(f"unix://{sock}")
        self.server.start()

    def stop(self):
        self.server.stop(0)


def test_runtime_not_ready_fails_healthz_until_it_is(berthlet_factory, cri, tmp_path):
    sock = tmp_path / "fake.sock"
    fake = FakeRuntime(cri, sock)
    try:
        b = berthlet_factory("not-ready")
        b.endpoint = sock
        b.start(wait=False)

        def failing():
            code, body = b.get_status("/healthz")
            return code == 503 and "[-]runtime failed: RuntimeReady is false: FakeNotReady: the test says so" in body \
                and "[+]syncloop ok" in body and body
        L.wait_for(failing, what="/healthz to name RuntimeReady")
        L.wait_for(lambda: "not ready: RuntimeReady=false (FakeNotReady: the test says so)" in b.log(),
                   what="the condition in the log")
        fake.ready = {"RuntimeReady": True, "NetworkReady": False}
        L.wait_for(lambda: "[-]network failed: NetworkReady is false" in b.get_status("/healthz")[1], timeout=15,
                   what="/healthz to name NetworkReady")
        fake.ready = {"RuntimeReady": True, "NetworkReady": True}
        L.wait_for(lambda: b.get_status("/healthz") == (200, "ok"), timeout=15, what="/healthz ok")
        assert "runtime unix://%s ready" % sock in b.log()
        b.stop()
    finally:
        fake.stop()
