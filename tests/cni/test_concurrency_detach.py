"""Two ADDs at once on a network whose bridge does not exist yet; berth-bridge's
detached DEL child as a caller reading stdout to EOF (like libcni) sees it."""
import ctypes
import json
import os
import subprocess

import cni_helpers as H

PR_SET_CHILD_SUBREAPER = 36


def test_concurrent_adds_create_the_bridge_once_with_distinct_addresses(world):
    w = world
    plugin = {"type": "berth-bridge", "bridge": "bt-conc0", "isGateway": True, "ipMasq": True,
              "ipam": w.host_local(["10.250.12.0/24", "fd42:250:12::/64"])}
    w.write_conf("conc", {"cniVersion": "1.1.0", "name": "conc", "plugins": [plugin]})
    pods = {f"c{i}": w.pod(f"c{i}") for i in range(4)}
    base = [str(H.BERTH_CNI), "--conf-dir", str(w.conf_dir), "--cache-dir", str(w.cache_dir),
            "--bin-dir", str(w.bin_dir), "--ifname", "eth0"]
    procs = {cid: subprocess.Popen(["nsenter", f"--net={w.host}", *base, "--cid", cid, "add", "conc", p],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cid, p in pods.items()}
    results = {}
    for cid, p in procs.items():
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, f"ADD {cid} failed: {err}"
        results[cid] = json.loads(out)
    for v6 in (False, True):
        addrs = [H.ip_of(r, v6) for r in results.values()]
        assert len(set(addrs)) == len(addrs), addrs
    bridges = [n for n, l in w.links(w.host).items() if l.get("linkinfo", {}).get("info_kind") == "bridge"]
    assert bridges == ["bt-conc0"]
    assert [a for a in w.addrs(w.host, "bt-conc0") if "." in a] == ["10.250.12.1/24"]
    assert "fd42:250:12::1/64" in w.addrs(w.host, "bt-conc0")
    for cid, p in pods.items():
        w.cni("del", "conc", p, cid=cid)


def _children() -> list[int]:
    out = []
    for t in os.listdir("/proc/self/task"):
        out += [int(x) for x in open(f"/proc/self/task/{t}/children").read().split()]
    return out


def test_detached_del_child_holds_no_caller_pipe_and_exits_cleanly(world):
    w = world
    conf = {"cniVersion": "1.0.0", "name": "dnet", "type": "berth-bridge", "bridge": "bt-det0", "isGateway": True,
            "ipam": w.host_local("10.250.13.0/24")}
    pod = w.pod("d")
    env = {"PATH": os.environ["PATH"], "CNI_CONTAINERID": "d1", "CNI_NETNS": pod, "CNI_IFNAME": "eth0",
           "CNI_PATH": str(w.bin_dir)}
    run = ["nsenter", f"--net={w.host}", str(w.bin_dir / "berth-bridge")]  # nsenter execs: the plugin is our child
    add = subprocess.run(run, input=json.dumps(conf), env={**env, "CNI_COMMAND": "ADD"}, capture_output=True,
                         text=True, timeout=60)
    assert add.returncode == 0, add.stdout + add.stderr
    conf["prevResult"] = json.loads(add.stdout)

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        assert _children() == []
        p = subprocess.Popen(run, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**env, "CNI_COMMAND": "DEL"}, text=True)
        out, err = p.communicate(json.dumps(conf), timeout=60)  # to EOF on stdout and stderr, as libcni reads
        assert p.returncode == 0, out + err
        # DEL returned once the host veth was gone.
        assert w.veths() == []
        left = _children()
        # The child the plugin left behind came to us (a subreaper). While alive it
        # holds no pipe (ours or any) and no file: only its netlink socket.
        assert len(left) == 1, f"expected the detached DEL child, found {left}"
        fds = []
        try:
            fds = [os.readlink(f"/proc/{left[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{left[0]}/fd")]
        except (FileNotFoundError, ProcessLookupError):
            pass  # already exited: a zombie has no fds
        assert all(f.startswith("socket:") for f in fds), fds
        _, status = os.waitpid(left[0], 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert _children() == []
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    assert w.ipam_files("dnet") == []


def test_masquerade_failing_at_the_second_address_leaves_no_rule(world):
    """ip6tables refuses to append (a fake, in this one plugin run's mount namespace):
    the IPv4 rules already made must be undone with the rest of the ADD."""
    w = world
    alt = w.tmp / "alternatives"
    alt.mkdir()
    fake = w.tmp / "ip6tables-failing"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -A ] && { echo "refused by test" >&2; exit 1; }; done\n'
                    'exec /usr/sbin/ip6tables-nft "$@"\n')
    fake.chmod(0o755)
    os.symlink("/usr/sbin/iptables-nft", alt / "iptables")
    os.symlink(fake, alt / "ip6tables")
    conf = {"cniVersion": "1.0.0", "name": "mnet", "type": "berth-bridge", "bridge": "bt-masq0",
            "isGateway": True, "ipMasq": True, "ipMasqBackend": "iptables",
            "ipam": w.host_local(["10.250.14.0/24", "fd42:250:14::/64"])}
    pod = w.pod("m")
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "m1", "CNI_NETNS": pod,
           "CNI_IFNAME": "eth0", "CNI_PATH": str(w.bin_dir)}
    script = f'mount --bind "{alt}" /etc/alternatives && exec nsenter --net="{w.host}" "{w.bin_dir}/berth-bridge"'
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], input=json.dumps(conf),
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "refused by test" in r.stdout, r.stdout + r.stderr
    # The fixture's leak check then finds no veth, reservation or 10.250./fd42: rule.
    assert [l for l in w.nat_rules() if "10.250.14." in l] == []
