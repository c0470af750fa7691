"""berthlet's GET /metrics on the read-only port: after a pod runs, a liveness probe fails
once (one restart) and a manifest is invalid, the scrape (parsed strictly by
tests/lib/prom_text.py) matches the pod status, the log and the CRI calls made."""
import json

import agent_lib as L
import prom_text
from agent_lib import container, cstatus, pod_manifest, running

# The first instance of "live" never creates /work/ok: its liveness probe (after 2 s)
# fails and it is restarted; the second instance finds /work/started and creates ok.
LIVE = "if [ -f /work/started ]; then touch /work/ok; fi; touch /work/started; " + L.SLEEPER


def scrape(b):
    return prom_text.parse(b.get("/metrics"))


def v(fams, name, **labels):
    return prom_text.value(fams, name, 0, **labels)


def test_metrics_match_pods_probes_and_calls(berthlet):
    mount = [{"name": "work", "mountPath": "/work"}]
    ready = container("ready", L.SLEEPER, readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})
    live = container("live", LIVE, volumeMounts=mount,
                     livenessProbe={"exec": {"command": ["test", "-f", "/work/ok"]}, "periodSeconds": 1,
                                    "initialDelaySeconds": 2, "failureThreshold": 1})
    berthlet.write("m.yaml", pod_manifest("m", [ready, live], volumes=[{"name": "work", "emptyDir": {}}]))
    berthlet.write("bad.yaml", "kind: Pod\nspec: [not, a, pod]\n")
    berthlet.wait_pod("m", lambda p: running(p, "ready") and running(p, "live")
                      and cstatus(p, "live")["restartCount"] == 1 and cstatus(p, "ready")["ready"],
                      timeout=60, what="one restart of live, ready Ready")
    L.wait_for(lambda: v(scrape(berthlet), "prober_probe_total", probe_type="Liveness", result="successful") >= 1,
               what="a successful liveness probe of the second instance")

    # A consistent view: neither the pod status nor berthlet's own figures changed between
    # two scrapes (a probe may be between its ExecSync and its result).
    def ours(fams):
        return {k: f["samples"] for k, f in fams.items() if not k.startswith("process_")}

    def stable():
        before = berthlet.get("/pods")
        fams, again = scrape(berthlet), scrape(berthlet)
        ok = berthlet.get("/pods") == before and ours(fams) == ours(again)
        return (fams, json.loads(before)["items"]) if ok else None
    fams, pods = L.wait_for(stable, what="a stable pod status")

    assert fams["berthlet_running_pods"]["type"] == "gauge"
    assert v(fams, "berthlet_running_pods") == sum(p["status"]["phase"] == "Running" for p in pods) == 1
    states = [next(iter(c["state"])) for p in pods for c in p["status"].get("containerStatuses", [])]
    for state in ("running", "waiting", "terminated"):
        assert v(fams, "berthlet_running_containers", container_state=state) == states.count(state)
    assert v(fams, "berthlet_running_containers", container_state="running") == 2
    assert v(fams, "berthlet_pod_workers") == 1
    assert v(fams, "berthlet_manifests", state="error") == 1
    assert v(fams, "berthlet_manifests", state="ok") == 1

    # One restart, one failed liveness probe (as logged); readiness succeeded.
    assert v(fams, "berthlet_container_restarts_total") == 1
    assert v(fams, "prober_probe_total", probe_type="Liveness", result="failed") == 1
    assert berthlet.log().count("container live failed liveness probe, will be restarted") == 1
    assert v(fams, "prober_probe_total", probe_type="Readiness", result="successful") >= 1
    assert v(fams, "prober_probe_total", probe_type="Readiness", result="failed") == 0

    # CRI calls: one sandbox, three containers created and started (live twice), no errors
    # in them; every probe run was one ExecSync.
    for op, n in (("RunPodSandbox", 1), ("CreateContainer", 3), ("StartContainer", 3)):
        assert v(fams, "berthlet_runtime_operations_duration_seconds_count", operation_type=op) == n, op
        assert v(fams, "berthlet_runtime_operations_errors_total", operation_type=op) == 0, op
    probes = sum(val for (n, _), val in fams["prober_probe_total"]["samples"].items())
    assert v(fams, "berthlet_runtime_operations_duration_seconds_count", operation_type="ExecSync") == probes
    assert v(fams, "process_open_fds") > 0

    # /metrics answers GET only, like the other paths.
    assert berthlet.get_status("/metrics")[0] == 200
