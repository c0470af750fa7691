"""Readiness gates Ready (exec, httpGet, tcpSocket); init containers run in order."""
import agent_lib as L
from agent_lib import condition, container, cstatus, pod_manifest, running

HTTPD = "mkdir -p /www && echo ok > /www/index.html && sleep 2 && exec httpd -f -p 8080 -h /www"


def test_readiness_gates_ready(berthlet):
    exec_ready = container("exec", "sleep 2; touch /tmp/ready; " + L.SLEEPER,
                           readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1})
    http_ready = container("http", HTTPD,
                           ports=[{"name": "web", "containerPort": 8080}],
                           readinessProbe={"httpGet": {"path": "/index.html", "port": "web",
                                                       "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                                           "periodSeconds": 1})
    tcp_ready = container("tcp", "sleep 2; exec httpd -f -p 9090",
                          readinessProbe={"tcpSocket": {"port": 9090}, "periodSeconds": 1})
    berthlet.write("ready.yaml", pod_manifest("ready", [exec_ready, http_ready, tcp_ready]))
    pod = berthlet.wait_pod("ready", lambda p: all(running(p, n) for n in ("exec", "http", "tcp")))
    # running is not ready
    assert not condition(pod, "Ready") and not condition(pod, "ContainersReady")
    assert "containers with unready status" in next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["message"]
    pod = berthlet.wait_pod("ready", lambda p: condition(p, "Ready"), timeout=30, what="Ready")
    assert all(cstatus(pod, n)["ready"] for n in ("exec", "http", "tcp"))
    # a readiness failure takes Ready away without a restart
    pod = berthlet.wait_pod("ready", lambda p: condition(p, "Ready"))
    assert all(cstatus(pod, n)["restartCount"] == 0 for n in ("exec", "http", "tcp"))


def test_readiness_failure_clears_ready(berthlet):
    c = container("app", "touch /tmp/ready; sleep 3; rm /tmp/ready; " + L.SLEEPER,
                  readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1,
                                  "failureThreshold": 1})
    berthlet.write("flap.yaml", pod_manifest("flap", [c]))
    berthlet.wait_pod("flap", lambda p: condition(p, "Ready"), what="Ready")
    pod = berthlet.wait_pod("flap", lambda p: condition(p, "Ready") is False, timeout=20, what="not Ready")
    assert cstatus(pod, "app")["restartCount"] == 0 and running(pod, "app")


def test_init_containers_run_in_order_to_completion(berthlet):
    vol = [{"name": "work", "emptyDir": {}}]
    mount = [{"name": "work", "mountPath": "/work"}]
    init = [container("first", "sleep 1; echo 1 >> /work/order", volumeMounts=mount),
            container("second", "grep -q 1 /work/order && echo 2 >> /work/order", volumeMounts=mount)]
    main = container("main", "cat /work/order; " + L.SLEEPER, volumeMounts=mount)
    berthlet.write("init.yaml", pod_manifest("init", [main], init=init, volumes=vol))
    pod = berthlet.wait_pod("init", lambda p: cstatus(p, "first", init=True) is not None)
    if not condition(pod, "Initialized"):
        assert pod["status"]["phase"] == "Pending"
        assert cstatus(pod, "main")["state"]["waiting"]["reason"] == "PodInitializing"
    pod = berthlet.wait_pod("init", lambda p: running(p, "main"), what="main running")
    assert condition(pod, "Initialized")
    for n in ("first", "second"):
        t = cstatus(pod, n, init=True)["state"]["terminated"]
        assert t["exitCode"] == 0 and t["reason"] == "Completed"
    first = cstatus(pod, "first", init=True)["state"]["terminated"]
    second = cstatus(pod, "second", init=True)["state"]["terminated"]
    assert first["finishedAt"] <= second["startedAt"]
    uid = pod["metadata"]["uid"]
    log = berthlet.logs / f"default_init-node1_{uid}" / "main" / "0.log"
    text = L.wait_for(lambda: log.exists() and "2" in log.read_text() and log.read_text(), what="main's log")
    assert [line.split()[-1] for line in text.splitlines()] == ["1", "2"]


def test_failing_init_container_with_restart_never_fails_the_pod(berthlet):
    init = [container("bad", "exit 7")]
    berthlet.write("initfail.yaml", pod_manifest("initfail", [container("main", L.SLEEPER)], init=init,
                                                 restartPolicy="Never"))
    pod = berthlet.wait_pod("initfail", lambda p: p["status"]["phase"] == "Failed", what="phase Failed")
    assert cstatus(pod, "bad", init=True)["state"]["terminated"]["exitCode"] == 7
    assert "running" not in cstatus(pod, "main")["state"]
