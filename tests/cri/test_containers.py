"""CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
ListContainers, ExecSync, UpdateContainerResources, ReopenContainerLog, stats and events
on a real berthd: berth-shim per container, berth underneath, CRI logs where the kubelet
reads them. Every test ends with a leak check (make_world)."""

import json
import os
import re
import threading
import time

import grpc
import pytest

import pod_lib


def code_of(excinfo):
    return excinfo.value.code()


@pytest.fixture
def pod(world, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    pod_id, cfg = world.run_pod(cfg=world.pod_config(log_directory=str(logs)))
    return pod_id, cfg, logs


def test_lifecycle_exit_code_and_log(world, pod):
    pb2 = world.pb2
    pod_id, cfg, logs = pod
    cid = world.create(pod_id, cfg, command=["sh", "-c", "echo out; echo err >&2; exit 3"], log_path="c.log",
                       labels={"k": "v"})
    st = world.status(cid).status
    assert st.state == pb2.CONTAINER_CREATED and st.created_at > 0 and st.started_at == 0
    assert st.image.image == "docker.io/library/busybox:latest"
    assert st.image_ref.startswith("docker.io/library/busybox@sha256:")
    assert st.log_path == str(logs / "c.log")
    world.start(cid)
    world.wait_exited(cid)
    st = world.status(cid).status
    assert st.exit_code == 3 and st.reason == "Error"
    assert st.started_at > 0 and st.finished_at >= st.started_at
    records = (logs / "c.log").read_text().splitlines()
    streams = sorted((r.split(" ")[1], r.split(" ", 3)[3]) for r in records)
    assert streams == [("stderr", "err"), ("stdout", "out")]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (stdout|stderr) F ", r) for r in records)
    # The shim's own line about the exit is in berthd's log, in berthd's format.
    ended = [l for l in world.berthd.log().splitlines() if "component=berth-shim" in l and f"container={cid}" in l]
    assert any("level=info" in l and "ended: exit status 3" in l for l in ended), ended
    with pytest.raises(grpc.RpcError) as e:
        world.start(cid)
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION
    world.remove(cid)
    world.remove(cid)  # idempotent
    assert world.containers() == []


def test_completed_reason_and_list_filters(world, pod):
    pb2 = world.pb2
    pod_id, cfg, _ = pod
    done = world.run(pod_id, cfg, command=["true"], labels={"role": "job"})
    running = world.run(pod_id, cfg, command=["sleep", "1000"], labels={"role": "server"})
    world.wait_exited(done)
    assert world.status(done).status.reason == "Completed"
    assert {c.id for c in world.containers()} == {done, running}
    assert [c.id for c in world.containers(state=pb2.CONTAINER_RUNNING)] == [running]
    assert [c.id for c in world.containers(labels={"role": "job"})] == [done]
    assert [c.id for c in world.containers(id=running[:10])] == [running]
    assert {c.id for c in world.containers(pod_sandbox_id=pod_id)} == {done, running}
    assert world.containers(pod_sandbox_id="f" * 64) == []


def test_stop_waits_for_the_signal_then_kills(world, pod):
    pod_id, cfg, _ = pod
    polite = world.run(pod_id, cfg, command=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"])
    stubborn = world.run(pod_id, cfg, command=["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    time.sleep(0.5)
    t = time.monotonic()
    world.stop(polite, timeout=10)
    assert time.monotonic() - t < 5
    assert world.status(polite).status.exit_code == 0
    t = time.monotonic()
    world.stop(stubborn, timeout=2)
    took = time.monotonic() - t
    assert 1.8 < took < 8, took
    assert world.status(stubborn).status.exit_code == 137
    world.stop(stubborn, timeout=2)  # idempotent


def test_concurrent_stops_force_kill_without_waiting(world, pod):
    pod_id, cfg, _ = pod
    cid = world.run(pod_id, cfg, command=["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    time.sleep(0.3)
    slow = threading.Thread(target=world.stop, args=(cid, 30))
    slow.start()
    time.sleep(0.5)
    t = time.monotonic()
    world.stop(cid, 0)  # the kubelet's force: must not wait for the first call's grace period
    assert time.monotonic() - t < 5
    slow.join(10)
    assert not slow.is_alive()


def test_remove_running_container_kills_it(world, pod):
    pod_id, cfg, _ = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    pid = json.loads(world.status(cid, verbose=True).info["info"])["pid"]
    assert os.path.exists(f"/proc/{pid}")
    world.remove(cid)
    pod_lib.wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                     open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10, what="the process to die")
    with pytest.raises(grpc.RpcError) as e:
        world.status(cid)
    assert code_of(e) == grpc.StatusCode.NOT_FOUND


def test_exec_sync_output_exit_code_timeout_and_cap(world, pod):
    pod_id, cfg, _ = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    assert world.exec(cid, ["sh", "-c", "echo hi; echo oops >&2; exit 7"]) == (7, "hi\n", "oops\n")
    t = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        world.exec(cid, ["sleep", "60"], timeout=1)
    assert code_of(e) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t < 10
    procs = world.exec(cid, ["ps", "-o", "args"])[1]
    assert "sleep 60" not in procs and "sleep 1000" in procs, procs  # the timed-out one was killed
    code, out, _ = world.exec(cid, ["sh", "-c", "head -c 20000000 /dev/zero"], timeout=30)
    assert code == 0 and len(out) == (16 << 20) - (64 << 10)  # runtime.exec_sync_max_output, under the kubelet's 16 MiB
    with pytest.raises(grpc.RpcError) as e:
        world.exec(cid, [])
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT
    world.stop(cid)
    with pytest.raises(grpc.RpcError) as e:
        world.exec(cid, ["true"])
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION


def test_image_config_and_security_context(world, pod):
    pod_id, cfg, _ = pod
    cid = world.run(pod_id, cfg, command=["sleep", "1000"], env={"FOO": "bar"}, working_dir="/tmp",
                    run_as_user=65534, readonly_rootfs=True, drop=["ALL"])
    assert world.exec(cid, ["id", "-u"])[1].strip() == "65534"
    assert world.exec(cid, ["pwd"])[1].strip() == "/tmp"
    env = world.exec(cid, ["env"])[1]
    assert "FOO=bar" in env and "PATH=/usr/local/sbin" in env
    code, _, err = world.exec(cid, ["touch", "/newfile"])
    assert code != 0 and "Read-only file system" in err
    assert world.exec(cid, ["grep", "CapEff", "/proc/self/status"])[1].split()[1] == "0000000000000000"


def test_host_path_mounts(world, pod, tmp_path):
    pod_id, cfg, _ = pod
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("from host\n")
    cid = world.run(pod_id, cfg, command=["sleep", "1000"],
                    mounts=[{"container_path": "/data", "host_path": str(tmp_path / "data"), "readonly": True}])
    assert world.exec(cid, ["cat", "/data/f"])[1] == "from host\n"
    assert world.exec(cid, ["touch", "/data/g"])[0] != 0
    assert world.status(cid).status.mounts[0].container_path == "/data"


def host_offers(controller):
    cg = pod_lib.cgroup2_mount()
    return cg is not None and controller in open(os.path.join(cg, "cgroup.controllers")).read().split()


def test_update_resources(world, pod):
    pod_id, cfg, _ = pod
    req = world.pb2.UpdateContainerResourcesRequest()
    req.linux.cpu_shares = 512
    req.linux.memory_limit_in_bytes = 256 << 20
    # A created container: the stored spec, used at start.
    created = world.create(pod_id, cfg, command=["sleep", "1000"])
    req.container_id = created
    world.rt.UpdateContainerResources(req)
    assert world.status(created).status.resources.linux.memory_limit_in_bytes == 256 << 20
    spec = json.loads(world.status(created, verbose=True).info["info"])["runtimeSpec"]
    assert spec["linux"]["resources"]["memory"]["limit"] == 256 << 20
    assert spec["linux"]["resources"]["devices"][0]["allow"] is False  # the device rules stay
    # A running container: the runtime's `update`, which cannot lie about what the host enforces.
    running = world.run(pod_id, cfg, command=["sleep", "1000"])
    req.container_id = running
    if host_offers("memory"):
        world.rt.UpdateContainerResources(req)
        assert world.status(running).status.resources.linux.memory_limit_in_bytes == 256 << 20
    else:
        with pytest.raises(grpc.RpcError) as e:
            world.rt.UpdateContainerResources(req)
        assert "memory controller" in e.value.details()
        assert world.status(running).status.resources.linux.memory_limit_in_bytes != 256 << 20
    world.exec(running, ["true"])


def test_reopen_log(world, pod):
    pod_id, cfg, logs = pod
    cid = world.run(pod_id, cfg, command=["sh", "-c", "while true; do echo tick; sleep 0.2; done"], log_path="t.log")
    pod_lib.wait_for(lambda: (logs / "t.log").exists() and "tick" in (logs / "t.log").read_text(), 10)
    os.rename(logs / "t.log", logs / "t.log.1")
    world.rt.ReopenContainerLog(world.pb2.ReopenContainerLogRequest(container_id=cid))
    pod_lib.wait_for(lambda: (logs / "t.log").exists() and "tick" in (logs / "t.log").read_text(), 10,
                     what="records in the reopened log")
    size = (logs / "t.log.1").stat().st_size
    time.sleep(0.6)
    assert (logs / "t.log.1").stat().st_size == size  # the old file no longer grows


def test_stats(world, pod):
    pod_id, cfg, _ = pod
    cid = world.run(pod_id, cfg, command=["sh", "-c", "while true; do :; done"])
    time.sleep(0.5)
    s = world.rt.ContainerStats(world.pb2.ContainerStatsRequest(container_id=cid)).stats
    assert s.attributes.id == cid
    assert s.cpu.timestamp > 0 and s.memory.timestamp > 0
    assert s.cpu.usage_core_nano_seconds.value > 0
    assert s.writable_layer.timestamp > 0
    listed = world.rt.ListContainerStats(world.pb2.ListContainerStatsRequest()).stats
    assert [x.attributes.id for x in listed] == [cid]
    p = world.rt.PodSandboxStats(world.pb2.PodSandboxStatsRequest(pod_sandbox_id=pod_id)).stats
    assert p.attributes.id == pod_id
    assert p.linux.network.default_interface.name == "eth0"
    assert [x.attributes.id for x in p.linux.containers] == [cid]
    descriptors = world.rt.ListMetricDescriptors(world.pb2.ListMetricDescriptorsRequest()).descriptors
    assert "container_cpu_usage_seconds_total" in {d.name for d in descriptors}
    metrics = world.rt.ListPodSandboxMetrics(world.pb2.ListPodSandboxMetricsRequest()).pod_metrics
    assert [m.pod_sandbox_id for m in metrics] == [pod_id]


def test_events_stream(world, pod):
    pb2 = world.pb2
    pod_id, cfg, _ = pod
    stream = world.rt.GetContainerEvents(pb2.GetEventsRequest(), timeout=30)
    seen = []

    def read():
        try:
            for ev in stream:
                seen.append((ev.container_id, ev.container_event_type))
        except grpc.RpcError:
            pass
    t = threading.Thread(target=read)
    t.start()
    time.sleep(0.3)
    cid = world.run(pod_id, cfg, command=["true"])
    world.wait_exited(cid)
    world.remove(cid)
    pod_lib.wait_for(lambda: (cid, pb2.CONTAINER_DELETED_EVENT) in seen, 10, what="the deleted event")
    stream.cancel()
    t.join(5)
    kinds = [k for i, k in seen if i == cid]
    assert kinds == [pb2.CONTAINER_CREATED_EVENT, pb2.CONTAINER_STARTED_EVENT, pb2.CONTAINER_STOPPED_EVENT,
                     pb2.CONTAINER_DELETED_EVENT]


@pytest.mark.parametrize("mutate,field", [
    (lambda c: c.ClearField("metadata"), "config.metadata"),
    (lambda c: setattr(c.image, "image", ""), "config.image.image"),
    (lambda c: setattr(c, "log_path", "/abs.log"), "config.log_path"),
    (lambda c: setattr(c, "log_path", "../escape.log"), "config.log_path"),
    (lambda c: c.mounts.add(container_path="relative", host_path="/tmp"), "config.mounts[0].container_path"),
    (lambda c: c.linux.security_context.capabilities.add_capabilities.append("NOT_A_CAP"), "NOT_A_CAP"),
])
def test_bad_container_config_is_refused_naming_the_field(world, pod, mutate, field):
    pod_id, cfg, _ = pod
    c = world.container_config(command=["true"])
    mutate(c)
    with pytest.raises(grpc.RpcError) as e:
        world.create(pod_id, cfg, c)
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert field in e.value.details()
    assert world.containers() == []


def test_unknown_image_sandbox_and_container(world, pod):
    pod_id, cfg, _ = pod
    with pytest.raises(grpc.RpcError) as e:
        world.create(pod_id, cfg, image="docker.io/library/not-pulled:1")
    assert code_of(e) == grpc.StatusCode.NOT_FOUND and "not-pulled" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        world.create("f" * 64, cfg, command=["true"])
    assert code_of(e) == grpc.StatusCode.NOT_FOUND
    for call in (world.start, world.status, lambda i: world.stop(i, 0)):
        with pytest.raises(grpc.RpcError) as e:
            call("e" * 64)
        assert code_of(e) == grpc.StatusCode.NOT_FOUND
    world.remove("e" * 64)


def test_container_in_stopped_pod_is_refused(world, pod):
    pod_id, cfg, _ = pod
    world.stop_pod(pod_id)
    with pytest.raises(grpc.RpcError) as e:
        world.create(pod_id, cfg, command=["true"])
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION


def test_start_error_is_reported_and_leaves_nothing(world, pod):
    pod_id, cfg, _ = pod
    cid = world.create(pod_id, cfg, command=["/no/such/binary"])
    with pytest.raises(grpc.RpcError) as e:
        world.start(cid)
    assert "/no/such/binary" in e.value.details()
    st = world.status(cid).status
    assert st.state == world.pb2.CONTAINER_EXITED and st.reason == "StartError"
    assert "/no/such/binary" in st.message


def test_calls_racing_on_one_pod(world):
    """Stops, removes and creates of one pod from many threads: every call answers, nothing leaks."""
    pod_id, cfg = world.run_pod()
    ids = [world.run(pod_id, cfg, command=["sleep", "1000"]) for _ in range(4)]
    errors = []

    def call(fn, *a):
        try:
            fn(*a)
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                errors.append(e)
    threads = [threading.Thread(target=call, args=(world.stop_pod, pod_id)) for _ in range(3)]
    threads += [threading.Thread(target=call, args=(world.remove_pod, pod_id)) for _ in range(3)]
    threads += [threading.Thread(target=call, args=(world.remove, i)) for i in ids]
    threads += [threading.Thread(target=call, args=(world.run, pod_id, cfg)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert world.pods() == [] and world.containers() == []


@pytest.mark.parametrize("call,req,field", [
    ("ContainerStatus", lambda pb2, i: pb2.ContainerStatusRequest(container_id=i), "container"),
    ("StartContainer", lambda pb2, i: pb2.StartContainerRequest(container_id=i), "container"),
    ("StopContainer", lambda pb2, i: pb2.StopContainerRequest(container_id=i), "container"),
    ("ExecSync", lambda pb2, i: pb2.ExecSyncRequest(container_id=i, cmd=["true"]), "container"),
    ("ContainerStats", lambda pb2, i: pb2.ContainerStatsRequest(container_id=i), "container"),
    ("ReopenContainerLog", lambda pb2, i: pb2.ReopenContainerLogRequest(container_id=i), "container"),
    ("UpdateContainerResources", lambda pb2, i: pb2.UpdateContainerResourcesRequest(container_id=i), "container"),
    ("PodSandboxStatus", lambda pb2, i: pb2.PodSandboxStatusRequest(pod_sandbox_id=i), "pod sandbox"),
    ("StopPodSandbox", lambda pb2, i: pb2.StopPodSandboxRequest(pod_sandbox_id=i), "pod sandbox"),
    ("PodSandboxStats", lambda pb2, i: pb2.PodSandboxStatsRequest(pod_sandbox_id=i), "pod sandbox"),
])
def test_every_call_names_a_missing_or_unknown_id(world, call, req, field):
    for bad, code in (("", grpc.StatusCode.INVALID_ARGUMENT), ("a" * 64, grpc.StatusCode.NOT_FOUND),
                      ("x" * 100000, grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.RpcError) as e:
            getattr(world.rt, call)(req(world.pb2, bad))
        assert e.value.code() == code, (bad[:8], e.value.details())
        assert field in e.value.details() or "_id" in e.value.details()
        assert len(e.value.details()) < 20000  # an echoed id is bounded
    assert world.rt.Version(world.pb2.VersionRequest()).runtime_name == "berth"  # still serving


def test_bad_resource_values_are_refused(world, pod):
    pod_id, cfg, _ = pod
    cid = world.create(pod_id, cfg, command=["sleep", "100"])
    req = world.pb2.UpdateContainerResourcesRequest(container_id=cid)
    req.linux.cpu_shares = -5
    with pytest.raises(grpc.RpcError) as e:
        world.rt.UpdateContainerResources(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cpu_shares" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        world.create(pod_id, cfg, command=["true"], resources={"memory_limit_in_bytes": -2})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "memory_limit_in_bytes" in e.value.details()
