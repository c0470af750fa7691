"""berth-bridge driven by the client: connectivity, every option, CHECK, DEL."""
import json

import pytest

import cni_helpers as H


def conf(w, name="bnet", bridge="bt-brt0", subnets=("10.250.2.0/24", "fd42:250:2::/64"), version="1.0.0",
         extra=None, chain=()):
    plugin = {"type": "berth-bridge", "bridge": bridge, "isDefaultGateway": True, "ipMasq": True,
              "ipam": w.host_local(list(subnets))}
    plugin.update(extra or {})
    return {"cniVersion": version, "name": name, "plugins": [plugin, *chain]}


def test_two_pods_dual_stack_ping_check_and_delete(world):
    w = world
    w.write_conf("bnet", conf(w))
    p1, p2 = w.pod("p1"), w.pod("p2")
    r1, r2 = w.add("bnet", p1, cid="c1"), w.add("bnet", p2, cid="c2")
    assert r1["cniVersion"] == "1.0.0"
    names = [i["name"] for i in r1["interfaces"]]
    assert names[0] == "bt-brt0" and names[1].startswith("veth") and names[2] == "eth0"
    assert r1["interfaces"][2]["sandbox"] == p1
    assert all(ip["interface"] == 2 for ip in r1["ips"])
    assert {"dst": "0.0.0.0/0", "gw": "10.250.2.1"} in r1["routes"]
    assert {"dst": "::/0", "gw": "fd42:250:2::1"} in r1["routes"]

    for v6 in (False, True):
        a1, a2, gw = H.ip_of(r1, v6), H.ip_of(r2, v6), H.gateway_of(r1, v6)
        assert w.ping(p1, a2) and w.ping(p2, a1), f"pods cannot reach each other ({'v6' if v6 else 'v4'})"
        assert w.ping(p1, gw), f"pod cannot reach the host gateway {gw}"
    # The host end is on the bridge, the pod end carries the result's MAC and addresses.
    links = w.links(w.host)
    assert links[names[1]]["master"] == "bt-brt0"
    pod_eth0 = w.links(p1)["eth0"]
    assert pod_eth0["address"] == r1["interfaces"][2]["mac"]
    assert set(w.addrs(p1, "eth0")) >= {ip["address"] for ip in r1["ips"]}
    assert "10.250.2.1/24" in w.addrs(w.host, "bt-brt0")
    assert w.in_host("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    # host-local's own files, format included.
    assert (w.ipam_dir / "bnet" / H.ip_of(r1)).read_bytes() == b"c1\r\neth0"
    masq = [l for l in w.nat_rules() if "bnet" in l]
    assert any(H.ip_of(r1) in l for l in masq) and any("MASQUERADE" in l for l in masq)
    assert any(H.ip_of(r1, True) in l for l in w.nat_rules(v6=True))

    w.cni("check", "bnet", p1, cid="c1")
    w.cni("del", "bnet", p1, cid="c1")
    w.cni("del", "bnet", p2, cid="c2")
    assert w.veths() == []
    assert "eth0" not in w.links(p1) and "eth0" not in w.links(p2)
    assert w.ipam_files("bnet") == []
    assert w.cache_files() == []
    assert [l for l in w.nat_rules() if "bnet" in l] == []
    assert [l for l in w.nat_rules(v6=True) if "bnet" in l] == []


def test_options_mtu_mac_promisc_and_check_detects_drift(world):
    w = world
    w.write_conf("bnet", conf(w, extra={"mtu": 1400, "promiscMode": True, "ipMasq": False}))
    p = w.pod("p")
    r = w.add("bnet", p, cid="c", cni_args="IgnoreUnknown=1;MAC=02:42:ac:11:00:99")
    eth0 = w.links(p)["eth0"]
    assert eth0["mtu"] == 1400 and eth0["address"] == "02:42:ac:11:00:99"
    assert "PROMISC" in w.links(w.host)["bt-brt0"]["flags"]
    assert r["interfaces"][2]["mac"] == "02:42:ac:11:00:99"
    w.cni("check", "bnet", p, cid="c")
    w.in_ns(p, "ip", "addr", "del", r["ips"][0]["address"], "dev", "eth0")
    e = w.cni("check", "bnet", p, cid="c", check=False)
    assert e.returncode == 1 and f"lacks address {r['ips'][0]['address']}" in e.stderr, e.stderr
    w.cni("del", "bnet", p, cid="c")
    assert w.veths() == [] and w.ipam_files("bnet") == []


def test_hairpin_and_requested_ip(world):
    w = world
    w.write_conf("bnet", conf(w, subnets=("10.250.3.0/24",), extra={"hairpinMode": True, "ipMasq": False,
                                                                    "capabilities": {"ips": True}}))
    p = w.pod("p")
    r = w.add("bnet", p, cid="c", cap_args={"ips": ["10.250.3.77/24"]})
    assert r["ips"][0]["address"] == "10.250.3.77/24"
    host_veth = r["interfaces"][1]["name"]
    brport = w.in_host("ip", "-j", "-d", "link", "show", host_veth).stdout
    assert '"hairpin":true' in brport.replace(" ", ""), brport
    w.cni("del", "bnet", p, cid="c")
    assert w.ipam_files("bnet") == []


def test_chained_with_reference_plugins_and_nftables_masq(world):
    w = world
    chain = [{"type": "portmap", "capabilities": {"portMappings": True}},
             {"type": "firewall", "backend": "iptables"},
             {"type": "tuning", "dataDir": str(w.tmp / "tuning"), "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "2"}}]
    w.write_conf("bnet", conf(w, subnets=("10.250.4.0/24",), extra={"ipMasqBackend": "nftables"}, chain=chain))
    p1, p2 = w.pod("p1"), w.pod("p2")
    ports = {"portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}]}
    r1 = w.add("bnet", p1, cid="c1", cap_args=ports)
    r2 = w.add("bnet", p2, cid="c2")
    assert w.ping(p1, H.ip_of(r2))
    assert w.in_ns(p1, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore").stdout.strip() == "2"
    nft = w.in_host("nft", "list", "table", "inet", "cni_plugins_masquerade").stdout
    assert H.ip_of(r1) in nft and "masquerade" in nft
    assert "18081" in "\n".join(w.nat_rules())
    w.cni("check", "bnet", p1, cid="c1")
    w.cni("del", "bnet", p1, cid="c1", cap_args=ports)
    w.cni("del", "bnet", p2, cid="c2")
    nft = w.in_host("nft", "list", "table", "inet", "cni_plugins_masquerade").stdout
    assert H.ip_of(r1) not in nft and H.ip_of(r2) not in nft
    assert "18081" not in "\n".join(w.nat_rules())
    assert w.veths() == [] and w.ipam_files("bnet") == [] and w.cache_files() == []
    w.in_host("nft", "delete", "table", "inet", "cni_plugins_masquerade")


def test_shares_host_local_store_with_the_reference(world):
    w = world
    ipam = w.host_local("10.250.5.0/24")
    w.write_conf("shared", {"cniVersion": "1.0.0", "name": "shared",
                            "plugins": [{"type": "bridge", "bridge": "bt-shr0", "isGateway": True, "ipam": ipam}]})
    p1, p2 = w.pod("p1"), w.pod("p2")
    r1 = w.add("shared", p1, cid="c1")  # the reference plugins
    w.write_conf("shared", {"cniVersion": "1.0.0", "name": "shared",
                            "plugins": [{"type": "berth-bridge", "bridge": "bt-shr0", "isGateway": True,
                                         "ipam": ipam}]})
    r2 = w.add("shared", p2, cid="c2")  # berth-bridge, same bridge and store
    assert H.ip_of(r1) == "10.250.5.2" and H.ip_of(r2) == "10.250.5.3"
    assert w.ping(p2, H.ip_of(r1))
    w.cni("del", "shared", p2, cid="c2")
    assert w.ipam_files("shared") == ["10.250.5.2"]
    w.cni("del", "shared", p1, cid="c1")  # berth-bridge deletes what the reference made
    assert w.ipam_files("shared") == [] and w.veths() == []


def test_delegated_ipam_plugin(world):
    w = world
    w.write_conf("static", {"cniVersion": "1.0.0", "name": "static", "plugins": [
        {"type": "berth-bridge", "bridge": "bt-sta0", "isGateway": True,
         "ipam": {"type": "static", "addresses": [{"address": "10.250.6.9/24", "gateway": "10.250.6.1"}]}}]})
    p = w.pod("p")
    r = w.add("static", p, cid="c")
    assert r["ips"][0]["address"] == "10.250.6.9/24"
    assert "10.250.6.9/24" in w.addrs(p, "eth0")
    assert w.ping(p, "10.250.6.1")
    w.cni("del", "static", p, cid="c")
    assert w.veths() == []


def test_restart_between_add_and_del_uses_the_cache(world):
    """ADD and DEL are separate processes (as across a daemon restart); when the
    pod's namespace is gone by then, DEL still finds the addresses in the cached
    result and removes the masquerade rules and the reservation."""
    w = world
    w.write_conf("bnet", conf(w, subnets=("10.250.7.0/24",)))
    p = w.pod("p")
    r = w.add("bnet", p, cid="c")
    cached = json.loads((w.cache_dir / "results" / "bnet-c-eth0").read_text())
    assert cached["result"]["ips"][0]["address"] == r["ips"][0]["address"] and cached["netns"] == p
    H.sh(H.BERTH_CNI, "netns-del", p)
    assert any(H.ip_of(r) in l for l in w.nat_rules())
    w.cni("del", "bnet", p, cid="c")
    assert not any(H.ip_of(r) in l for l in w.nat_rules()), w.nat_rules()
    assert w.ipam_files("bnet") == [] and w.cache_files() == []
    # The pair dies with the namespace, in the kernel's netns cleanup worker.
    assert H.wait_for(lambda: w.veths() == []), w.veths()


def test_clear_errors_on_conflicts(world):
    w = world
    w.write_conf("bnet", conf(w, subnets=("10.250.11.0/24",), extra={"ipMasq": False}))
    p = w.pod("p")
    w.add("bnet", p, cid="c1")
    # A second attachment with the same interface name in the same pod.
    e = w.cni("add", "bnet", p, cid="c2", check=False)
    assert e.returncode == 1 and 'container veth name "eth0"' in e.stderr and "already exists" in e.stderr, e.stderr
    assert w.ipam_files("bnet") == ["10.250.11.2"]  # c2's address was given back
    # An address already on the bridge is not replaced without forceAddress.
    w.in_host("ip", "addr", "add", "10.250.11.1/24", "dev", "bt-brt0", check=False)
    w.write_conf("other", conf(w, name="other", subnets=("10.250.12.0/24",), extra={"ipMasq": False}))
    q = w.pod("q")
    e = w.cni("add", "other", q, cid="c3", check=False)
    assert '"bt-brt0" already has an IP address different from 10.250.12.1/24' in e.stderr, e.stderr
    w.cni("del", "bnet", p, cid="c1")
    assert w.ipam_files("other") == []
