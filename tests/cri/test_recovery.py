"""berthd restarted (SIGTERM) or killed (SIGKILL) at any point: containers keep running
and are found again, exits that happened while it was down carry their real exit code
and time, half-made pods and containers are undone, and the kubelet's retry succeeds.
Every test ends with a leak check (make_world)."""

import json
import os
import random
import signal
import threading
import time

import grpc
import pytest

import pod_lib


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_keeps_containers_and_reports_exits(world, sig):
    pb2 = world.pb2
    pod_id, cfg = world.run_pod(pid=pb2.POD)
    keeps = world.run(pod_id, cfg, command=["sleep", "1000"])
    ends = world.run(pod_id, cfg, command=["sh", "-c", "sleep 1; exit 42"])
    pid = json.loads(world.status(keeps, verbose=True).info["info"])["pid"]
    world.berthd.stop(sig) if sig != signal.SIGKILL else world.berthd.kill9()
    time.sleep(1.5)  # `ends` exits while berthd is down
    world.up()
    assert os.path.exists(f"/proc/{pid}"), "a running container died with berthd"
    assert world.state(keeps) == pb2.CONTAINER_RUNNING
    assert world.pod_status(pod_id).status.state == pb2.SANDBOX_READY
    st = world.status(ends).status
    assert st.state == pb2.CONTAINER_EXITED and st.exit_code == 42
    assert st.finished_at < time.time_ns() - 100_000_000  # the real exit time, not the restart's
    assert world.exec(keeps, ["echo", "still here"])[1] == "still here\n"
    # The re-attached shim still reports the exit.
    world.stop(keeps, 5)
    assert world.status(keeps).status.exit_code == 143 or world.status(keeps).status.exit_code == 137


def test_killed_during_run_pod_sandbox_then_retry(make_world, cni_world, tmp_path):
    """A CNI plugin that takes a while: berthd is SIGKILLed in the middle of ADD."""
    w = make_world()
    slow_bin = tmp_path / "bin"
    slow_bin.mkdir()
    (slow_bin / "berth-bridge").write_text(f"#!/bin/sh\nsleep 1\nexec {pod_lib.BERTH_BRIDGE} \"$@\"\n")
    (slow_bin / "berth-bridge").chmod(0o755)
    w.berthd.stop()
    conf = open(w.berthd.config_path).read().replace(f'bin_dirs = ["{cni_world["bin"]}"', f'bin_dirs = ["{slow_bin}"')
    open(w.berthd.config_path, "w").write(conf)
    w.up()
    cfg = w.pod_config(pid=w.pb2.POD)
    fut = w.rt.RunPodSandbox.future(w.pb2.RunPodSandboxRequest(config=cfg))
    time.sleep(0.6)
    w.berthd.kill9()
    with pytest.raises(grpc.RpcError):
        fut.result()
    time.sleep(1.5)  # let the orphaned plugin finish
    w.up()
    assert w.pods() == []  # the half-made pod was undone at start-up
    w.assert_no_leaks()
    pod_id, _ = w.run_pod(cfg)  # the kubelet's retry, same name
    assert w.pod_status(pod_id).status.state == w.pb2.SANDBOX_READY


def test_killed_during_start_container_then_retry(make_world, tmp_path):
    """An OCI runtime that is slow to create: berthd is SIGKILLed while StartContainer waits."""
    slow = tmp_path / "slow-berth"
    slow.write_text(f"#!/bin/sh\nfor a; do [ \"$a\" = create ] && sleep 1; done\nexec {pod_lib.BERTH} \"$@\"\n")
    slow.chmod(0o755)
    w = make_world(extra_config=f'[runtime.handlers.slow]\nbinary = "{slow}"\n')
    pod_id, cfg = w.run_pod(handler="slow")
    cid = w.create(pod_id, cfg, command=["sleep", "1000"])
    fut = w.rt.StartContainer.future(w.pb2.StartContainerRequest(container_id=cid))
    time.sleep(0.5)
    w.berthd.kill9()
    with pytest.raises(grpc.RpcError):
        fut.result()
    time.sleep(2)
    w.up()
    # The shim went on and started it: berthd finds it running.
    assert w.state(cid) == w.pb2.CONTAINER_RUNNING
    assert w.exec(cid, ["true"])[0] == 0


def test_killed_at_random_points_of_container_calls(make_world):
    """berthd SIGKILLed at random moments of create/start/remove loops: after each restart the
    records match reality and the leak check passes."""
    w = make_world()
    rnd = random.Random(1234)
    pod_id, cfg = w.run_pod()
    for round_ in range(6):
        stop = threading.Event()

        def churn():
            while not stop.is_set():
                try:
                    cid = w.create(pod_id, cfg, command=["sleep", "1000"])
                    w.start(cid)
                    w.remove(cid)
                except (grpc.RpcError, ValueError):
                    return
        t = threading.Thread(target=churn)
        t.start()
        time.sleep(0.2 + rnd.random() * 0.5)
        w.berthd.kill9()
        stop.set()
        t.join(30)
        w.up()
        # Whatever survived is consistent: every listed container answers status and can be removed.
        for c in w.containers():
            w.status(c.id)
            w.remove(c.id)
        assert w.containers() == []
    w.stop_pod(pod_id)
    w.remove_pod(pod_id)
    w.assert_no_leaks()


def test_shim_killed_behind_berthds_back(world):
    pb2 = world.pb2
    pod_id, cfg = world.run_pod()
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    shim_pid = int(open(os.path.join(world.state_dir, "shims", cid, "shim.pid")).read())
    os.kill(shim_pid, signal.SIGKILL)
    world.stop(cid, 2)  # notices the monitor is gone instead of waiting forever
    st = world.status(cid).status
    assert st.state == pb2.CONTAINER_EXITED
