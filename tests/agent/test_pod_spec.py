"""Pod spec fields reaching the container: security context, host network, DNS,
hostname/subdomain (/etc/hosts), sysctls, runAsNonRoot."""
import socket

import agent_lib as L
from agent_lib import container, cstatus, pod_manifest, running


def container_log(berthlet, pod, name, want):
    uid = pod["metadata"]["uid"]
    path = berthlet.logs / f"default_{pod['metadata']['name']}_{uid}" / name / "0.log"
    text = L.wait_for(lambda: path.exists() and want in path.read_text() and path.read_text(),
                      what=f"{want!r} in {name}'s log")
    # CRI log lines: <time> <stream> <P|F> <text>
    return [line.split(" ", 3)[3] for line in text.splitlines()]


def test_security_context_reaches_the_container(berthlet):
    c = container("app", "id -u; id -g; grep CapBnd /proc/self/status; grep NoNewPrivs /proc/self/status; "
                         "touch /rootfs-write 2>/dev/null || echo read-only-rootfs; echo done; " + L.SLEEPER,
                  securityContext={"runAsUser": 1234, "runAsGroup": 4321, "readOnlyRootFilesystem": True,
                                   "allowPrivilegeEscalation": False,
                                   "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                                   "seccompProfile": {"type": "RuntimeDefault"}})
    berthlet.write("sec.yaml", pod_manifest("sec", [c]))
    pod = berthlet.wait_pod("sec", lambda p: running(p, "app"))
    lines = container_log(berthlet, pod, "app", "done")
    assert lines[0] == "1234" and lines[1] == "4321"
    bounding = int(lines[2].split()[1], 16)
    assert bounding == 1 << 10, hex(bounding)  # drop ALL, add NET_BIND_SERVICE
    assert lines[3].split()[1] == "1"
    assert "read-only-rootfs" in lines


def test_run_as_non_root_refuses_uid_zero(berthlet):
    c = container("app", L.SLEEPER, securityContext={"runAsNonRoot": True, "runAsUser": 0})
    berthlet.write("nonroot.yaml", pod_manifest("nonroot", [c]))

    def config_error(p):
        w = cstatus(p, "app")["state"].get("waiting", {})
        return w.get("reason") == "CreateContainerConfigError" and w

    w = berthlet.wait_pod("nonroot", config_error, what="CreateContainerConfigError")
    assert "breaks non-root policy" in cstatus(w, "app")["state"]["waiting"]["message"]


def test_dns_hostname_subdomain_and_sysctls(berthlet):
    c = container("app", "cat /etc/resolv.conf; hostname; cat /etc/hosts; "
                         "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo done; " + L.SLEEPER)
    berthlet.write("dns.yaml", pod_manifest(
        "dns", [c], hostname="db", subdomain="sub", dnsPolicy="None",
        dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["example.test"],
                   "options": [{"name": "ndots", "value": "2"}]},
        securityContext={"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]}))
    pod = berthlet.wait_pod("dns", lambda p: running(p, "app"))
    lines = container_log(berthlet, pod, "app", "done")
    text = "\n".join(lines)
    assert "nameserver 192.0.2.53" in text and "search example.test" in text and "options ndots:2" in text
    assert "db" in lines
    ip = pod["status"]["podIP"]
    assert any(line.startswith(ip) and line.split()[-1] == "db" for line in lines), text
    assert lines[-2] == "80"


def test_host_network_pod_sees_the_node(berthlet):
    c = container("app", "hostname; echo done; " + L.SLEEPER)
    berthlet.write("hostnet.yaml", pod_manifest("hostnet", [c], hostNetwork=True))
    pod = berthlet.wait_pod("hostnet", lambda p: running(p, "app"))
    assert pod["status"]["podIP"] == pod["status"]["hostIP"]
    lines = container_log(berthlet, pod, "app", "done")
    assert lines[0] == socket.gethostname()


def test_config_file_flags_override_and_sd_notify(berthlet_factory, tmp_path):
    b = berthlet_factory("config")
    cfg = tmp_path / "berthlet.yaml"
    cfg.write_text(f"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                   f"nodeName: from-config\nfileCheckFrequency: 5s\n"
                   f"clusterDNS: [192.0.2.10]\nclusterDomain: cluster.test\nreadOnlyPort: 1\n")
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(sock_path))
        notify.settimeout(20)
        # the flags given by the harness (node name, port, paths) override the file
        b.start("--config", str(cfg), env={"NOTIFY_SOCKET": str(sock_path)})
        assert notify.recv(4096) == b"READY=1"
    c = container("app", "cat /etc/resolv.conf; echo done; " + L.SLEEPER)
    b.write("cf.yaml", pod_manifest("cf", [c]))
    pod = b.wait_pod("cf", lambda p: running(p, "app"))  # named <name>-node1: the flag won
    lines = container_log(b, pod, "app", "done")
    assert "nameserver 192.0.2.10" in lines
    assert any(line.startswith("search default.svc.cluster.test svc.cluster.test cluster.test") for line in lines)
    assert "options ndots:5" in lines
