"""The client driving Debian's containernetworking-plugins (bridge, host-local,
loopback, portmap, firewall, tuning)."""
import json

import cni_helpers as H


def chain_conf(w, version="1.0.0", name="refnet", bridge="bt-ref0", subnet="10.250.0.0/24"):
    return {
        "cniVersion": version, "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True,
             "ipam": w.host_local(subnet)},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": "iptables"},
            {"type": "tuning", "dataDir": str(w.tmp / "tuning"),
             "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}},
        ],
    }


def test_chain_two_pods_ping_and_clean_delete(world):
    w = world
    w.write_conf("refnet", chain_conf(w))
    w.write_conf("lo", {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}, file="99-lo.conf")
    p1, p2 = w.pod("p1"), w.pod("p2")
    ports = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    r1 = w.add("refnet", p1, cid="c1", cap_args=ports)
    r2 = w.add("refnet", p2, cid="c2")
    for p, cid in ((p1, "c1"), (p2, "c2")):
        w.cni("add", "lo", p, cid=cid, ifname="lo")

    # prevResult flowed through the chain: the final result is the bridge's.
    assert r1["cniVersion"] == "1.0.0"
    assert [i["name"] for i in r1["interfaces"]][0] == "bt-ref0"
    ip1, ip2, gw = H.ip_of(r1), H.ip_of(r2), H.gateway_of(r1)
    assert w.ping(p1, ip2) and w.ping(p2, ip1), "pods cannot reach each other over the bridge"
    assert w.ping(p1, gw), "pod cannot reach the host"
    assert w.ping(p1, "127.0.0.1"), "loopback plugin did not bring lo up"
    assert w.in_ns(p1, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore").stdout.strip() == "1"
    nat = "\n".join(w.nat_rules())
    assert "18080" in nat, f"portmap set no DNAT rule:\n{nat}"
    assert ip1 in nat, "ipMasq set no rule"
    assert ip1 in "\n".join(w.filter_rules()), "firewall plugin set no rule"
    assert sorted(w.cache_files()) == ["lo-c1-lo", "lo-c2-lo", "refnet-c1-eth0", "refnet-c2-eth0"]
    cached = json.loads((w.cache_dir / "results" / "refnet-c1-eth0").read_text())
    assert cached["kind"] == "cniCacheV1" and cached["capabilityArgs"] == ports
    w.cni("check", "refnet", p1, cid="c1")

    for p, cid in ((p1, "c1"), (p2, "c2")):
        w.cni("del", "refnet", p, cid=cid, cap_args=ports if cid == "c1" else None)
        w.cni("del", "lo", p, cid=cid, ifname="lo")
    assert w.veths() == []
    assert w.ipam_files("refnet") == []
    assert w.cache_files() == []
    nat = "\n".join(w.nat_rules())
    assert "18080" not in nat and ip1 not in nat and ip2 not in nat, nat
    filt = "\n".join(w.filter_rules())
    assert ip1 not in filt and ip2 not in filt, filt
    assert "eth0" not in w.links(p1)


def test_old_config_versions_get_converted_results(world):
    w = world
    w.write_conf("old", {"cniVersion": "0.3.1", "name": "old",
                         "plugins": [{"type": "bridge", "bridge": "bt-old0", "isGateway": True,
                                      "ipam": w.host_local("10.250.1.0/24")}]})
    p = w.pod("p")
    r = w.add("old", p, cid="c")
    assert r["cniVersion"] == "0.3.1"
    assert r["ips"][0]["version"] == "4"  # the 0.3.x form
    w.cni("del", "old", p, cid="c")
    # CHECK needs 0.4.0; the client says so instead of running the plugins.
    w.add("old", p, cid="c")
    e = w.cni("check", "old", p, cid="c", check=False)
    assert e.returncode == 1 and "does not support the CHECK command" in e.stderr
    w.cni("del", "old", p, cid="c")
    assert w.veths() == [] and w.ipam_files("old") == []


def test_delete_is_idempotent_and_survives_a_gone_netns(world):
    w = world
    conf = chain_conf(w)
    # The reference bridge finds masquerade rules through the pod's addresses, so
    # it cannot remove them once the namespace is gone (berth-bridge can: see
    # test_restart_between_add_and_del_uses_the_cache).
    conf["plugins"][0]["ipMasq"] = False
    w.write_conf("refnet", conf)
    p = w.pod("p")
    ip = H.ip_of(w.add("refnet", p, cid="c"))
    H.sh(H.BERTH_CNI, "netns-del", p)  # the pod's namespace is gone before DEL
    w.cni("del", "refnet", p, cid="c")
    w.cni("del", "refnet", p, cid="c")  # and again: still fine
    assert w.ipam_files("refnet") == []
    assert ip not in "\n".join(w.filter_rules())
    assert w.cache_files() == []
