"""berthd's resource handling where cgroup v2 has its controllers: run in the micro-VM
by tests/vm/run-cgroup-tests.sh (the host is cgroup-hybrid). Limits from CreateContainer
reach the container's cgroup, UpdateContainerResources changes a running container's,
stats carry memory figures, and an OOM kill is reported as OOMKilled."""

import os

import grpc
import pytest

import pod_lib


def _problem():
    mnt = pod_lib.cgroup2_mount()
    if mnt is None:
        return "no cgroup v2 hierarchy"
    have = open(os.path.join(mnt, "cgroup.controllers")).read().split()
    missing = [c for c in ("memory", "cpu") if c not in have]
    return f"cgroup v2 at {mnt} lacks {', '.join(missing)} (run in the VM: tests/vm/run-cgroup-tests.sh)" if missing else None


_PROBLEM = _problem()
pytestmark = [pytest.mark.cgroupv2, pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")]


def cgroup_of(world, cid):
    import json
    path = json.loads(world.status(cid, verbose=True).info["info"])["cgroupsPath"]
    return pod_lib.cgroup2_mount() + path


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_limits_updates_stats_and_oom(make_world):
    w = make_world(cni=False)  # host-network pods: no bridge needed in the VM
    pb2 = w.pb2
    pod_id, cfg = w.run_pod(network=pb2.NODE)
    cid = w.run(pod_id, cfg, command=["sleep", "100000"],
                resources={"memory_limit_in_bytes": 64 << 20, "cpu_quota": 50000, "cpu_period": 100000,
                           "cpu_shares": 512})
    cg = cgroup_of(w, cid)
    assert read(f"{cg}/memory.max") == str(64 << 20)
    assert read(f"{cg}/cpu.max") == "50000 100000"
    req = pb2.UpdateContainerResourcesRequest(container_id=cid)
    req.linux.memory_limit_in_bytes = 128 << 20
    req.linux.cpu_quota = 20000
    req.linux.cpu_period = 100000
    w.rt.UpdateContainerResources(req)
    assert read(f"{cg}/memory.max") == str(128 << 20)
    assert read(f"{cg}/cpu.max") == "20000 100000"
    assert w.status(cid).status.resources.linux.memory_limit_in_bytes == 128 << 20
    s = w.rt.ContainerStats(pb2.ContainerStatsRequest(container_id=cid)).stats
    assert s.memory.working_set_bytes.value > 0 and s.memory.usage_bytes.value > 0
    assert s.memory.available_bytes.value > 0

    hog = w.run(pod_id, cfg, command=["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 100"],
                resources={"memory_limit_in_bytes": 16 << 20})
    w.wait_exited(hog, timeout=120)
    st = w.status(hog).status
    assert st.reason == "OOMKilled", (st.reason, st.exit_code, st.message)
    assert st.exit_code == 137
