"""Restart policies, the crash-loop back-off, liveness and startup probes."""
import time

import agent_lib as L
from agent_lib import condition, container, cstatus, pod_manifest, running


def test_crash_looping_container_shows_the_back_off(berthlet, cri):
    berthlet.write("crash.yaml", pod_manifest("crash", [container("app", "echo crashing; exit 3")]))

    def in_backoff(p):
        cs = cstatus(p, "app")
        return cs and cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" and cs

    pod = berthlet.wait_pod("crash", in_backoff, what="CrashLoopBackOff")
    cs = cstatus(pod, "app")
    # first exit restarts at once; the second waits 10 s
    assert cs["restartCount"] == 1
    assert "back-off 10s restarting failed container=app" in cs["state"]["waiting"]["message"]
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error" and last["finishedAt"]
    assert pod["status"]["phase"] == "Running"
    assert not condition(pod, "Ready")
    # after the 10 s back-off it runs again (attempt 2) and then waits 20 s
    pod = berthlet.wait_pod("crash", lambda p: cstatus(p, "app")["restartCount"] == 2 and in_backoff(p),
                            timeout=40, what="the second restart")
    assert "back-off 20s" in cstatus(pod, "app")["state"]["waiting"]["message"]
    uid = pod["metadata"]["uid"]
    attempts = sorted(c.metadata.attempt for c in cri.containers(uid))
    assert attempts == [1, 2], "the kubelet keeps the newest dead container per name"
    assert "CrashLoopBackOff" in berthlet.log()


def test_liveness_failure_restarts_the_container(berthlet, cri, runtime_name):
    script = "touch /tmp/alive; sleep 2; rm /tmp/alive; " + L.SLEEPER
    c = container("app", script, livenessProbe={"exec": {"command": ["test", "-f", "/tmp/alive"]},
                                                "periodSeconds": 1, "failureThreshold": 2})
    berthlet.write("live.yaml", pod_manifest("live", [c]))
    pod = berthlet.wait_pod("live", lambda p: running(p, "app"))
    uid = pod["metadata"]["uid"]
    first = cri.running(uid)[0].id
    pod = berthlet.wait_pod("live", lambda p: cstatus(p, "app")["restartCount"] >= 1 and running(p, "app"),
                            timeout=30, what="the liveness restart")
    cs = cstatus(pod, "app")
    assert cs["lastState"]["terminated"]["containerID"] == f"{runtime_name}://" + first
    assert cri.running(uid)[0].id != first
    assert cri.running(uid)[0].annotations["io.kubernetes.container.restartCount"] == "1"
    assert "failed liveness probe, will be restarted" in berthlet.log()


def test_startup_probe_holds_liveness_and_readiness(berthlet):
    c = container("app", "sleep 2; touch /tmp/started; " + L.SLEEPER,
                  startupProbe={"exec": {"command": ["test", "-f", "/tmp/started"]}, "periodSeconds": 1,
                                "failureThreshold": 30},
                  livenessProbe={"exec": {"command": ["test", "-f", "/tmp/started"]}, "periodSeconds": 1})
    berthlet.write("startup.yaml", pod_manifest("startup", [c]))
    pod = berthlet.wait_pod("startup", lambda p: running(p, "app"))
    assert cstatus(pod, "app")["started"] is False and not cstatus(pod, "app")["ready"]
    pod = berthlet.wait_pod("startup", lambda p: cstatus(p, "app")["started"], timeout=20, what="started")
    assert cstatus(pod, "app")["ready"] and cstatus(pod, "app")["restartCount"] == 0
    assert condition(pod, "Ready")


def test_restart_policies_never_and_on_failure(berthlet, cri):
    berthlet.write("never.yaml", pod_manifest("never", [container("app", "exit 0")], restartPolicy="Never"))
    berthlet.write("fails.yaml", pod_manifest("fails", [container("app", "exit 4")], restartPolicy="Never"))
    berthlet.write("onfail.yaml", pod_manifest("onfail", [container("app", "test -f /proc/1/root/tmp/x || "
                                                                   "{ touch /tmp/x; exit 1; }")],
                                               restartPolicy="OnFailure"))
    pod = berthlet.wait_pod("never", lambda p: p["status"]["phase"] == "Succeeded")
    t = cstatus(pod, "app")["state"]["terminated"]
    assert t["exitCode"] == 0 and t["reason"] == "Completed"
    assert condition(pod, "Ready") is False
    pod = berthlet.wait_pod("fails", lambda p: p["status"]["phase"] == "Failed")
    assert cstatus(pod, "app")["restartCount"] == 0
    # OnFailure restarts a failed container (a fresh /tmp, so it fails again: back-off)
    pod = berthlet.wait_pod("onfail", lambda p: cstatus(p, "app")["restartCount"] >= 1, timeout=30)
    # a finished pod keeps no running sandbox
    uid = berthlet.pod("never")["metadata"]["uid"]
    L.wait_for(lambda: all(s.state == cri.pb.SANDBOX_NOTREADY for s in cri.sandboxes(uid)), what="sandbox stopped")


def test_container_that_cannot_start_goes_through_the_back_off(berthlet, cri):
    c = {"name": "app", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent", "command": ["/no/such/binary"]}
    berthlet.write("nostart.yaml", pod_manifest("nostart", [c]))

    def backing_off(p):
        cs = cstatus(p, "app")
        return cs and cs["state"].get("waiting", {}).get("reason") in ("CrashLoopBackOff", "RunContainerError") \
            and cs["restartCount"] >= 1 and cs

    pod = berthlet.wait_pod("nostart", backing_off, timeout=30, what="start errors backing off")
    uid = pod["metadata"]["uid"]
    time.sleep(3)
    # not a tight loop: within the 10 s back-off no new attempts appear
    assert max(c.metadata.attempt for c in cri.containers(uid)) <= 2
    assert "Error" in berthlet.log() or "error" in berthlet.log()
