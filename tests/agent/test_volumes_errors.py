"""Volumes (hostPath, emptyDir incl. Memory and subPath), bad manifests, image pull errors, hooks."""
import os
import time

import agent_lib as L
from agent_lib import condition, container, cstatus, pod_manifest, running


def log_of(berthlet, pod, name, want):
    uid = pod["metadata"]["uid"]
    path = berthlet.logs / f"default_{pod['metadata']['name']}_{uid}" / name / "0.log"
    return L.wait_for(lambda: path.exists() and want in path.read_text() and path.read_text(),
                      what=f"{want!r} in {name}'s log")


def test_host_path_and_empty_dir_data_is_visible(berthlet, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "from-host").write_text("host data\n")
    created = tmp_path / "made" / "by" / "berthlet"
    vols = [{"name": "host", "hostPath": {"path": str(host), "type": "Directory"}},
            {"name": "made", "hostPath": {"path": str(created), "type": "DirectoryOrCreate"}},
            {"name": "shared", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}}]
    writer = container("writer",
                       "cat /host/from-host; echo to-host > /host/from-pod; echo shared > /shared/x; "
                       "echo sub > /sub/y; echo mem > /mem/z; df -k /mem | tail -1; "
                       "echo ro > /ro/nope 2>/dev/null || echo readonly-refused; " + L.SLEEPER,
                       volumeMounts=[{"name": "host", "mountPath": "/host"},
                                     {"name": "shared", "mountPath": "/shared"},
                                     {"name": "shared", "mountPath": "/sub", "subPath": "deep/dir"},
                                     {"name": "mem", "mountPath": "/mem"},
                                     {"name": "host", "mountPath": "/ro", "readOnly": True}])
    reader = container("reader", "sleep 1; cat /shared/x /shared/deep/dir/y /mem/z; " + L.SLEEPER,
                       volumeMounts=[{"name": "shared", "mountPath": "/shared"},
                                     {"name": "mem", "mountPath": "/mem"}])
    berthlet.write("vols.yaml", pod_manifest("vols", [writer, reader], volumes=vols))
    pod = berthlet.wait_pod("vols", lambda p: running(p, "writer") and running(p, "reader"))
    wlog = log_of(berthlet, pod, "writer", "readonly-refused")
    assert "host data" in wlog
    # the Memory emptyDir is a tmpfs of sizeLimit (4096 KiB)
    df = [line.split()[3:] for line in wlog.splitlines() if line.endswith(" /mem")]  # after the CRI log prefix
    assert df and df[0][0] == "tmpfs" and df[0][1] == "4096", wlog
    rlog = log_of(berthlet, pod, "reader", "mem")
    assert [line.split()[-1] for line in rlog.splitlines()] == ["shared", "sub", "mem"]
    L.wait_for(lambda: (host / "from-pod").exists(), what="the pod's write on the host")
    assert (host / "from-pod").read_text() == "to-host\n"
    assert created.is_dir()
    uid = pod["metadata"]["uid"]
    empty = berthlet.rootdir / "pods" / uid / "volumes" / "kubernetes.io~empty-dir"
    assert (empty / "shared" / "deep" / "dir" / "y").read_text() == "sub\n"
    assert os.path.ismount(empty / "mem")


def test_missing_host_path_is_reported_in_status(berthlet, tmp_path):
    vols = [{"name": "nope", "hostPath": {"path": str(tmp_path / "absent"), "type": "Directory"}}]
    c = container("app", L.SLEEPER, volumeMounts=[{"name": "nope", "mountPath": "/x"}])
    berthlet.write("nohost.yaml", pod_manifest("nohost", [c], volumes=vols))
    L.wait_for(lambda: "does not exist" in berthlet.log(), what="the hostPath error in the log")
    assert berthlet.pod("nohost") is None or not running(berthlet.pod("nohost"), "app")


def test_bad_manifests_are_reported_while_a_good_one_runs(berthlet, cri):
    berthlet.write("good.yaml", pod_manifest("good", [container("app", L.SLEEPER)]))
    berthlet.write("syntax.yaml", "kind: Pod\nmetadata: {name: broken\n")
    berthlet.write("deploy.yaml", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})
    berthlet.write("noimage.json", '{"kind":"Pod","metadata":{"name":"n"},"spec":{"containers":[{"name":"c"}]}}')
    berthlet.write("secret.yaml", pod_manifest("s", [container("app", "true")],
                                               volumes=[{"name": "v", "secret": {"secretName": "x"}}]))
    berthlet.write("types.yaml", pod_manifest("t", [container("app", "true", ports=[{"containerPort": "eighty"}])]))
    berthlet.wait_pod("good", lambda p: running(p, "app"))
    st = L.wait_for(lambda: len(berthlet.manifests_status()) == 6 and berthlet.manifests_status(), what="6 manifests")
    assert st["good.yaml"].get("podUID") and "error" not in st["good.yaml"]
    expect = {"syntax.yaml": "invalid YAML at line",
              "deploy.yaml": 'kind: "Deployment" is not supported',
              "noimage.json": "spec.containers[0].image: required",
              "secret.yaml": "spec.volumes[0].secret: volume type not supported",
              "types.yaml": "spec.containers[0].ports[0].containerPort: no container port named"}
    for f, text in expect.items():
        err = st[f]["error"]
        assert err.startswith(str(berthlet.manifests / f)), err
        assert text in err, err
        assert text in berthlet.log()
    assert [p["metadata"]["name"] for p in berthlet.pods()] == ["good-node1"]
    assert len(cri.sandboxes()) == 1
    # fixing a file makes its pod
    berthlet.write("noimage.json", '{"kind":"Pod","metadata":{"name":"n"},"spec":{"terminationGracePeriodSeconds":1,'
                                   '"containers":[{"name":"c","image":"busybox:latest","command":["sh","-c","%s"]}]}}'
                   % L.SLEEPER.replace("'", "'"))
    berthlet.wait_pod("n", lambda p: running(p, "c"))
    assert "error" not in berthlet.manifests_status()["noimage.json"]


def test_image_pull_failure_shows_err_image_pull_then_back_off(berthlet, registry):
    # A name of its own: the registry outlives this test (the suite runs once per CRI endpoint).
    name = f"arrives-later-{os.getpid()}-{time.monotonic_ns() % 100000}"
    c = container("app", L.SLEEPER, image=f"docker.io/library/{name}:1", imagePullPolicy="Always")
    berthlet.write("pull.yaml", pod_manifest("pull", [c]))

    def reason(p):
        cs = cstatus(p, "app")
        return cs and cs["state"].get("waiting", {}).get("reason")

    pod = berthlet.wait_pod("pull", lambda p: reason(p) in ("ErrImagePull", "ImagePullBackOff"), what="a pull error")
    berthlet.wait_pod("pull", lambda p: reason(p) == "ImagePullBackOff", timeout=20, what="ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"
    assert f'Failed to pull image "docker.io/library/{name}:1"' in berthlet.log()
    # once the image exists, the next attempt after the back-off (10 s) pulls it and the pod runs
    L.oci_image.push(L.oci_image.build_image("busybox"), registry.addr, f"library/{name}:1")
    berthlet.wait_pod("pull", lambda p: running(p, "app"), timeout=40, what="the pod after the image arrived")


def test_lifecycle_hooks_post_start_and_pre_stop(berthlet, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()
    c = container("app", "trap 'echo term >> /out/log; exit 0' TERM; while true; do sleep 0.2; done",
                  volumeMounts=[{"name": "out", "mountPath": "/out"}],
                  lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "echo post-start >> /out/log"]}},
                             "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop >> /out/log"]}}})
    berthlet.write("hooks.yaml", pod_manifest("hooks", [c], volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
                                              terminationGracePeriodSeconds=5))
    berthlet.wait_pod("hooks", lambda p: running(p, "app"))
    L.wait_for(lambda: (out / "log").exists() and "post-start" in (out / "log").read_text(), what="postStart")
    berthlet.remove("hooks.yaml")
    L.wait_for(lambda: berthlet.pod("hooks") is None, what="the pod to go")
    assert (out / "log").read_text().split() == ["post-start", "pre-stop", "term"]
