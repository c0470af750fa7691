"""berthlet restarts: pods are adopted, not restarted; removed manifests are cleaned up;
the runtime going away and coming back is reconnected."""
import signal
import time

import agent_lib as L
from agent_lib import condition, container, cstatus, pod_manifest, running


def snapshot(cri):
    return sorted((c.id, c.pod_sandbox_id, c.metadata.attempt) for c in cri.running())


def test_killed_and_restarted_berthlet_adopts_its_pods(berthlet_factory, cri):
    b = berthlet_factory("adopt").start()
    b.write("a.yaml", pod_manifest("a", [container("app", L.SLEEPER,
                                                   readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})]))
    b.write("b.yaml", pod_manifest("b", [container("one", L.SLEEPER), container("two", L.SLEEPER)]))
    b.wait_pod("a", lambda p: condition(p, "Ready"))
    b.wait_pod("b", lambda p: running(p, "one") and running(p, "two"))
    before = snapshot(cri)
    sandboxes = sorted(s.id for s in cri.sandboxes())
    assert b.stop(signal.SIGKILL) == -signal.SIGKILL
    b.start()
    pa = b.wait_pod("a", lambda p: condition(p, "Ready"), what="pod a Ready again")
    pb = b.wait_pod("b", lambda p: running(p, "one") and running(p, "two"))
    time.sleep(2)  # a few relists: nothing may restart
    assert snapshot(cri) == before, b.log()
    assert sorted(s.id for s in cri.sandboxes()) == sandboxes
    assert cstatus(pa, "app")["restartCount"] == 0 and cstatus(pb, "one")["restartCount"] == 0
    assert "adopted" in b.log()


def test_clean_shutdown_leaves_pods_running(berthlet_factory, cri):
    b = berthlet_factory("shutdown").start()
    b.write("p.yaml", pod_manifest("p", [container("app", L.SLEEPER)]))
    b.wait_pod("p", lambda p: running(p, "app"))
    before = snapshot(cri)
    assert b.stop(signal.SIGTERM) == 0
    time.sleep(1)
    assert snapshot(cri) == before
    b.start()
    b.wait_pod("p", lambda p: running(p, "app"))
    assert snapshot(cri) == before


def test_manifest_removed_while_berthlet_is_down_removes_the_pod(berthlet_factory, cri):
    b = berthlet_factory("orphan").start()
    b.write("keep.yaml", pod_manifest("keep", [container("app", L.SLEEPER)]))
    b.write("drop.yaml", pod_manifest("drop", [container("app", L.SLEEPER)]))
    b.wait_pod("keep", lambda p: running(p, "app"))
    drop_uid = b.wait_pod("drop", lambda p: running(p, "app"))["metadata"]["uid"]
    keep = snapshot(cri)
    b.stop()
    b.remove("drop.yaml")
    b.start()
    L.wait_for(lambda: cri.sandboxes(drop_uid) == [], what="the orphaned pod to be removed")
    assert b.pod("drop") is None
    assert [c for c in snapshot(cri)] == [k for k in keep if k[1] != cri.sandboxes(drop_uid) and
                                         k in snapshot(cri)]
    assert running(b.pod("keep"), "app")


def test_runtime_going_away_and_back_is_reconnected(berthlet, cri_world, cri, runtime_name):
    ctd, _ = cri_world
    berthlet.write("r.yaml", pod_manifest("r", [container("app", L.SLEEPER)]))
    berthlet.wait_pod("r", lambda p: running(p, "app"))
    before = snapshot(cri)
    ctd.proc.send_signal(signal.SIGTERM)  # shims and containers outlive containerd
    ctd.proc.wait(timeout=30)
    L.wait_for(lambda: "unavailable" in berthlet.log(), what="berthlet to notice")
    ctd.start()
    ctd.wait_ready(cri)
    L.wait_for(lambda: " connected" in berthlet.log().split("unavailable", 1)[1], timeout=30,
               what="berthlet to reconnect")
    # the pod is still the same, and berthlet still manages it: an edit replaces it
    assert snapshot(cri) == before
    berthlet.write("r.yaml", pod_manifest("r", [container("app", "echo new; " + L.SLEEPER)]))
    berthlet.wait_pod("r", lambda p: running(p, "app") and cstatus(p, "app")["containerID"] != f"{runtime_name}://" + before[0][0])
