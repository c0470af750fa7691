"""Manifests to pods: dropped in, edited, touched, removed."""
import json
import os
import time

import agent_lib as L
from agent_lib import condition, container, cstatus, pod_manifest, running


def test_manifest_dropped_in_runs_the_pod(berthlet, cri, runtime_name):
    m = pod_manifest("web", [container("app", 'echo "hello from $POD_NAME/$POD_NS on $NODE"; ' + L.SLEEPER,
                                       env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                                       resources={"limits": {"cpu": "250m", "memory": "64Mi"}})],
                     )
    m["metadata"]["labels"] = {"app": "web"}
    berthlet.write("web.yaml", m)
    pod = berthlet.wait_pod("web", lambda p: condition(p, "Ready"), what="pod web Ready")
    uid = pod["metadata"]["uid"]
    st = pod["status"]
    assert st["phase"] == "Running"
    assert st["podIP"].startswith("10.231.77."), st
    assert st["qosClass"] == "Guaranteed"
    assert st["startTime"]
    for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready", "PodReadyToStartContainers"):
        assert condition(pod, ctype), (ctype, st["conditions"])
    cs = cstatus(pod, "app")
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
    assert cs["image"] == "busybox:latest" and cs["imageID"]
    assert cs["containerID"].startswith(f"{runtime_name}://")

    # What really runs, seen through the CRI: the kubelet's labels and annotations.
    (sb,) = cri.sandboxes(uid)
    assert sb.metadata.name == "web-node1" and sb.metadata.namespace == "default" and sb.metadata.uid == uid
    assert sb.labels["app"] == "web" and sb.labels["io.kubernetes.pod.uid"] == uid
    assert sb.annotations["kubernetes.io/config.source"] == "file"
    (c,) = cri.running(uid)
    assert c.labels["io.kubernetes.container.name"] == "app"
    assert c.annotations["io.kubernetes.container.restartCount"] == "0"
    assert "io.kubernetes.container.hash" in c.annotations
    assert cs["containerID"] == f"{runtime_name}://" + c.id
    status = cri.container_status(c.id)
    assert status.log_path == str(berthlet.logs / f"default_web-node1_{uid}" / "app" / "0.log")
    # resources with the kubelet's conversions reach the runtime
    assert status.resources.linux.cpu_quota == 25000 and status.resources.linux.cpu_period == 100000
    assert status.resources.linux.memory_limit_in_bytes == 64 << 20
    assert status.resources.linux.cpu_shares == 256
    # the container's log: env from fieldRef
    log = L.wait_for(lambda: "hello" in open(status.log_path).read() and open(status.log_path).read(), what="log")
    assert "hello from web-node1/default on node1" in log
    # the pod's cgroup parent by QoS class: on the v1 hierarchies (runc under containerd, on
    # this cgroup-hybrid host) or on the v2 one (berth)
    assert any(os.path.isdir(f"{m}/berthlet-test-{os.environ.get('AGENT_TAG', '0')}/kubepods/pod{uid}")
               for m in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/pids",
                         "/sys/fs/cgroup/unified", "/sys/fs/cgroup"))
    # the whole pod as the kubelet's read-only endpoint shows it
    one = json.loads(berthlet.get("/pods/default/web-node1"))
    assert one["kind"] == "Pod" and one["spec"]["nodeName"] == "node1" and one["metadata"]["uid"] == uid


def test_edited_manifest_replaces_the_pod_and_an_unchanged_one_is_left_alone(berthlet, cri):
    m = pod_manifest("edit", [container("app", "echo v1; " + L.SLEEPER)])
    berthlet.write("edit.yaml", m)
    pod = berthlet.wait_pod("edit", lambda p: running(p, "app"))
    uid1 = pod["metadata"]["uid"]
    (c1,) = cri.running(uid1)

    # rewritten with the same content (and a comment): same UID, same container
    berthlet.write("edit.yaml", "# touched\n" + L.yaml.safe_dump(m))
    time.sleep(1.5)
    assert cri.running(uid1)[0].id == c1.id
    assert berthlet.pod("edit")["metadata"]["uid"] == uid1

    m["spec"]["containers"][0]["command"][2] = "echo v2; " + L.SLEEPER
    berthlet.write("edit.yaml", m)
    pod = berthlet.wait_pod("edit", lambda p: p["metadata"]["uid"] != uid1 and running(p, "app"), what="the new pod")
    uid2 = pod["metadata"]["uid"]
    L.wait_for(lambda: cri.sandboxes(uid1) == [], what="the old pod's sandbox to go")
    assert cri.containers(uid1) == []
    (c2,) = cri.running(uid2)
    assert c2.id != c1.id
    assert len(berthlet.pods()) == 1


def test_removed_manifest_stops_and_removes_the_pod(berthlet, cri):
    berthlet.write("gone.json", json.dumps(pod_manifest("gone", [container("app", L.SLEEPER)],
                                                        volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}}])))
    pod = berthlet.wait_pod("gone", lambda p: running(p, "app"))
    uid = pod["metadata"]["uid"]
    vol = berthlet.rootdir / "pods" / uid / "volumes" / "kubernetes.io~empty-dir" / "scratch"
    assert os.path.ismount(vol)
    logdir = berthlet.logs / f"default_gone-node1_{uid}"
    assert logdir.is_dir()
    berthlet.remove("gone.json")
    L.wait_for(lambda: berthlet.pod("gone") is None, what="the pod to leave /pods")
    L.wait_for(lambda: cri.sandboxes(uid) == [] and cri.containers(uid) == [], what="the runtime to forget the pod")
    assert not os.path.ismount(vol) and not (berthlet.rootdir / "pods" / uid).exists()
    assert not logdir.exists()
    assert "gone.json" not in berthlet.manifests_status()


def test_dotfiles_and_subdirectories_are_ignored(berthlet, cri):
    berthlet.write(".hidden.yaml", pod_manifest("hidden", [container("app", L.SLEEPER)]))
    sub = berthlet.manifests / "sub"
    sub.mkdir()
    (sub / "p.yaml").write_text(L.yaml.safe_dump(pod_manifest("sub", [container("app", L.SLEEPER)])))
    berthlet.write("real.yaml", pod_manifest("real", [container("app", L.SLEEPER)]))
    berthlet.wait_pod("real", lambda p: running(p, "app"))
    assert [p["metadata"]["name"] for p in berthlet.pods()] == ["real-node1"]
    assert len(cri.sandboxes()) == 1
    (sub / "p.yaml").unlink()
    sub.rmdir()
    (berthlet.manifests / ".hidden.yaml").unlink()
