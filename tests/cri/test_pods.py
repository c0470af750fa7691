"""RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox on a
real berthd: namespaces pinned without a pause process (one only for a shared PID
namespace), the pod's files, sysctls, CNI through berth-bridge, filters, bad input.
Every test ends with a leak check (make_world)."""

import ipaddress
import json
import os
import socket
import subprocess

import grpc
import pytest

import pod_lib


def code_of(excinfo):
    return excinfo.value.code()


def test_run_stop_remove_and_status(world):
    pb2 = world.pb2
    pod_id, cfg = world.run_pod(labels={"app": "web"})
    st = world.pod_status(pod_id).status
    assert st.id == pod_id
    assert st.state == pb2.SANDBOX_READY
    assert st.metadata.name == cfg.metadata.name and st.metadata.uid == cfg.metadata.uid
    assert st.created_at > 0
    assert ipaddress.ip_address(st.network.ip) in ipaddress.ip_network("10.231.88.0/24")
    assert st.labels["app"] == "web"
    assert [p.id for p in world.pods()] == [pod_id]
    world.stop_pod(pod_id)
    assert world.pod_status(pod_id).status.state == pb2.SANDBOX_NOTREADY
    world.stop_pod(pod_id)  # idempotent
    world.remove_pod(pod_id)
    world.remove_pod(pod_id)  # idempotent
    assert world.pods(id=pod_id) == []
    with pytest.raises(grpc.RpcError) as e:
        world.pod_status(pod_id)
    assert code_of(e) == grpc.StatusCode.NOT_FOUND


def test_no_pause_process_unless_pid_namespace_is_shared(world):
    pb2 = world.pb2
    before = len(pod_lib.pause_processes(world.state_dir))
    world.run_pod(pid=pb2.CONTAINER)
    assert len(pod_lib.pause_processes(world.state_dir)) == before
    pod_id, cfg = world.run_pod(pid=pb2.POD)
    assert len(pod_lib.pause_processes(world.state_dir)) == before + 1
    info = json.loads(world.pod_status(pod_id, verbose=True).info["info"])
    assert info["pid"] > 0
    cid = world.run(pod_id, cfg, command=["sleep", "1000"], pid=pb2.POD)
    code, out, _ = world.exec(cid, ["cat", "/proc/1/cmdline"])
    assert out.rstrip("\0") == "/pause"


def test_pod_files_dns_hostname_and_sysctls(world):
    host_value = open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()
    pod_id, cfg = world.run_pod(hostname="web-1", dns=(["10.10.10.10"], ["example.test"], ["ndots:8"]),
                                sysctls={"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "80"})
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    assert world.exec(cid, ["hostname"])[1].strip() == "web-1"
    resolv = world.exec(cid, ["cat", "/etc/resolv.conf"])[1]
    assert "nameserver 10.10.10.10" in resolv and "search example.test" in resolv and "options ndots:8" in resolv
    assert "localhost" in world.exec(cid, ["cat", "/etc/hosts"])[1]
    assert world.exec(cid, ["cat", "/proc/sys/kernel/shm_rmid_forced"])[1].strip() == "1"
    assert world.exec(cid, ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"])[1].strip() == "80"
    # /dev/shm is the pod's own tmpfs, shared by its containers.
    cid2 = world.run(pod_id, cfg, command=["sleep", "1000"])
    world.exec(cid, ["sh", "-c", "echo shared > /dev/shm/x"])
    assert world.exec(cid2, ["cat", "/dev/shm/x"])[1] == "shared\n"
    # The host's sysctl is untouched: it was written inside the pod's network namespace.
    assert open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read() == host_value


def test_host_network_pod(world):
    pb2 = world.pb2
    pod_id, cfg = world.run_pod(network=pb2.NODE, hostname="")
    st = world.pod_status(pod_id).status
    assert st.network.ip == ""
    cid = world.run(pod_id, cfg, command=["sleep", "1000"])
    assert world.exec(cid, ["hostname"])[1].strip() == socket.gethostname()
    host_links = set(os.listdir("/sys/class/net"))
    links = set(world.exec(cid, ["ls", "/sys/class/net"])[1].split())
    assert links == host_links


def test_pod_ip_answers_from_the_host(world):
    pod_id, cfg = world.run_pod()
    ip = world.pod_status(pod_id).status.network.ip
    cid = world.run(pod_id, cfg, command=["nc", "-l", "-p", "8080", "-e", "echo", "hello-from-pod"])
    pod_lib.wait_for(lambda: world.exec(cid, ["sh", "-c", "netstat -ltn | grep -q :8080"])[0] == 0, 10,
                     what="the pod's listener")
    with socket.create_connection((ip, 8080), timeout=5) as s:
        assert s.recv(100) == b"hello-from-pod\n"


def test_list_filters(world):
    pb2 = world.pb2
    a, _ = world.run_pod(labels={"tier": "a"})
    b, _ = world.run_pod(labels={"tier": "b"})
    world.stop_pod(b)
    assert {p.id for p in world.pods()} == {a, b}
    assert [p.id for p in world.pods(id=a[:12])] == [a]
    assert [p.id for p in world.pods(labels={"tier": "b"})] == [b]
    assert [p.id for p in world.pods(state=pb2.SANDBOX_READY)] == [a]
    assert [p.id for p in world.pods(state=pb2.SANDBOX_NOTREADY)] == [b]


def test_name_is_reserved_until_removed(world):
    pod_id, cfg = world.run_pod()
    with pytest.raises(grpc.RpcError) as e:
        world.run_pod(cfg)
    assert code_of(e) == grpc.StatusCode.ALREADY_EXISTS
    assert pod_id in e.value.details()
    world.stop_pod(pod_id)
    world.remove_pod(pod_id)
    again, _ = world.run_pod(cfg)
    assert again != pod_id


@pytest.mark.parametrize("mutate,field", [
    (lambda c: c.ClearField("metadata"), "config.metadata"),
    (lambda c: setattr(c.metadata, "name", ""), "config.metadata.name"),
    (lambda c: setattr(c.metadata, "uid", "a/b"), "config.metadata.uid"),
    (lambda c: setattr(c, "hostname", "bad host"), "config.hostname"),
    (lambda c: setattr(c, "log_directory", "relative/dir"), "config.log_directory"),
    (lambda c: c.linux.sysctls.__setitem__("kernel.panic", "1"), "kernel.panic"),
    (lambda c: c.linux.sysctls.__setitem__("net/../../x", "1"), "net/../../x"),
    (lambda c: c.port_mappings.add(container_port=70000), "config.port_mappings[0].container_port"),
    (lambda c: c.dns_config.servers.append("not-an-ip"), "dns_config.servers"),
    (lambda c: setattr(c.linux, "cgroup_parent", "/a/../../b"), "config.linux.cgroup_parent"),
])
def test_bad_sandbox_config_is_refused_naming_the_field(world, mutate, field):
    cfg = world.pod_config()
    mutate(cfg)
    with pytest.raises(grpc.RpcError) as e:
        world.run_pod(cfg)
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert field in e.value.details()
    assert world.pods() == []


def test_unknown_handler_and_ids(world):
    with pytest.raises(grpc.RpcError) as e:
        world.run_pod(handler="no-such-handler")
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT and "no-such-handler" in e.value.details()
    for call in (world.stop_pod, world.pod_status):
        with pytest.raises(grpc.RpcError) as e:
            call("0" * 64)
        assert code_of(e) == grpc.StatusCode.NOT_FOUND
    world.remove_pod("0" * 64)  # removing what is not there is success
    with pytest.raises(grpc.RpcError) as e:
        world.stop_pod("")
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_without_cni_config_network_is_not_ready_and_pods_fail_cleanly(make_world):
    w = make_world(cni=False)
    conds = {c.type: c for c in w.rt.Status(w.pb2.StatusRequest()).status.conditions}
    assert conds["RuntimeReady"].status
    assert not conds["NetworkReady"].status
    assert conds["NetworkReady"].reason == "NetworkPluginNotReady"
    with pytest.raises(grpc.RpcError) as e:
        w.run_pod()
    assert "no network config" in e.value.details()
    # host-network pods need no CNI
    pod_id, _ = w.run_pod(network=w.pb2.NODE)
    assert w.pod_status(pod_id).status.state == w.pb2.SANDBOX_READY


def test_failed_cni_add_leaves_nothing(make_world, cni_world, tmp_path):
    w = make_world()
    bad = tmp_path / "net.d"
    pod_lib.write_cni(str(bad), cni_world["bin"], cni_world["bridge"], cni_world["subnet"], cni_world["ipam"],
                      plugins_extra=[{"type": "no-such-plugin"}])
    w.berthd.stop()
    conf = open(w.berthd.config_path).read().replace(cni_world["conf"], str(bad))
    open(w.berthd.config_path, "w").write(conf)
    w.up()
    with pytest.raises(grpc.RpcError) as e:
        w.run_pod()
    assert "no-such-plugin" in e.value.details()
    assert w.pods() == []
