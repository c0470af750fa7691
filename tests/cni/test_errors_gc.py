"""Clear errors (bad configs, missing plugins, plugin errors, timeouts), GC,
STATUS, VERSION, and the pinned netns helpers."""
import json
import os

import cni_helpers as H


def bridge_conf(w, name="gnet", version="1.1.0", subnet="10.250.8.0/24", **extra):
    plugin = {"type": "berth-bridge", "bridge": "bt-gc0", "isGateway": True, "ipam": w.host_local(subnet)}
    plugin.update(extra)
    return {"cniVersion": version, "name": name, "plugins": [plugin]}


def test_bad_configs_name_file_and_field(world):
    w = world
    (w.conf_dir / "05-broken.conflist").write_text("{not json")
    w.write_conf("x", {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}, {"mtu": 5}]},
                 file="06-notype.conflist")
    w.write_conf("y", {"cniVersion": "7.0.0", "name": "y", "plugins": [{"type": "bridge"}]}, file="07-ver.conflist")
    w.write_conf("good", bridge_conf(w, name="good"), file="50-good.conflist")
    r = w.cni("list")
    assert r.stdout.startswith("good 1.1.0 ")
    assert f"{w.conf_dir}/05-broken.conflist: not valid JSON" in r.stderr
    assert f"{w.conf_dir}/06-notype.conflist: plugins[1]: missing \"type\"" in r.stderr
    assert f"{w.conf_dir}/07-ver.conflist: cniVersion: unsupported version \"7.0.0\"" in r.stderr
    e = w.cni("add", "x", w.pod("p"), cid="c", check=False)
    assert e.returncode == 1
    assert 'network "x" not found' in e.stderr and "valid networks: good" in e.stderr
    assert "06-notype.conflist" in e.stderr  # why it is not there


def test_missing_plugin_and_plugin_errors(world):
    w = world
    p = w.pod("p")
    w.write_conf("miss", {"cniVersion": "1.0.0", "name": "miss", "plugins": [{"type": "no-such-plugin"}]})
    e = w.cni("add", "miss", p, cid="c", check=False)
    assert e.returncode == 1
    assert 'plugin type="no-such-plugin" failed (add): failed to find plugin "no-such-plugin" in path' in e.stderr

    # berth-bridge refuses what it does not implement, with the CNI code.
    w.write_conf("vlan", bridge_conf(w, name="vlan", vlan=100))
    e = w.cni("add", "vlan", p, cid="c", check=False)
    assert "error 2: vlan: berth-bridge does not support VLANs" in e.stderr, e.stderr

    # The reference plugin's error object is parsed: code and message.
    w.write_conf("refbad", {"cniVersion": "1.0.0", "name": "refbad", "plugins": [
        {"type": "bridge", "bridge": "bt-bad0", "ipam": {"type": "host-local", "dataDir": str(w.ipam_dir),
                                                          "ranges": [[{"subnet": "10.250.9.1/24"}]]}}]})
    e = w.cni("add", "refbad", p, cid="c", check=False)
    assert e.returncode == 1 and 'plugin type="bridge" failed (add)' in e.stderr
    assert "bridge ADD: error 999: invalid range set 0: Network has host bits set" in e.stderr, e.stderr

    # Same for berth-bridge's own host-local: the field is named.
    w.write_conf("bbad", bridge_conf(w, name="bbad", subnet="10.250.9.1/24"))
    e = w.cni("add", "bbad", p, cid="c", check=False)
    assert "ipam.ranges[0][0].subnet: network has host bits set" in e.stderr, e.stderr
    assert w.veths() == [] and w.ipam_files("bbad") == []  # nothing left half-made
    assert w.cache_files() == []


def test_timeout_kills_the_plugin(world):
    w = world
    slow = w.bin_dir / "slow-plugin"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    w.write_conf("slow", {"cniVersion": "1.0.0", "name": "slow", "plugins": [{"type": "slow-plugin"}]})
    e = w.cni("add", "slow", w.pod("p"), cid="c", timeout=1, check=False)
    assert e.returncode == 1
    assert "slow-plugin ADD: timed out after 1000 ms (killed)" in e.stderr, e.stderr
    assert w.cache_files() == []


def test_gc_removes_stale_attachments(world):
    w = world
    w.write_conf("gnet", bridge_conf(w))
    pods = {cid: w.pod(cid) for cid in ("keep", "stale1", "stale2")}
    results = {cid: w.add("gnet", p, cid=cid) for cid, p in pods.items()}
    # A reservation with no cache entry at all (a plugin crashed mid-way once):
    # only the plugin-level GC with cni.dev/valid-attachments can find it.
    (w.ipam_dir / "gnet" / "10.250.8.200").write_text("ghost\r\neth0")
    assert len(w.veths()) == 3
    w.cni("gc", "gnet", "keep:eth0")
    assert w.cache_files() == ["gnet-keep-eth0"]
    assert w.ipam_files("gnet") == [H.ip_of(results["keep"])]
    assert len(w.veths()) == 1
    assert "eth0" in w.links(pods["keep"]) and "eth0" not in w.links(pods["stale1"])
    w.cni("check", "gnet", pods["keep"], cid="keep")
    w.cni("gc", "gnet")  # nothing valid any more
    assert w.cache_files() == [] and w.ipam_files("gnet") == [] and w.veths() == []


def test_status_and_version(world):
    w = world
    w.write_conf("gnet", bridge_conf(w))
    w.cni("status", "gnet")
    v = json.loads(w.cni("version", "berth-bridge").stdout)
    assert "1.1.0" in v["supportedVersions"] and "0.3.0" in v["supportedVersions"]
    ref = json.loads(w.cni("version", "bridge").stdout)
    assert "1.0.0" in ref["supportedVersions"]
    # Negotiation: validate asks each plugin for its versions before anything runs.
    w.cni("validate", "gnet")
    w.write_conf("newref", {"cniVersion": "1.1.0", "name": "newref", "plugins": [{"type": "bridge"}]})
    e = w.cni("validate", "newref", check=False)
    assert e.returncode == 1 and 'plugin type="bridge": does not support cniVersion 1.1.0 (supports' in e.stderr, e.stderr
    # STATUS reports an unusable address store (dataDir under a regular file).
    blocker = w.tmp / "file"
    blocker.write_text("")
    w.write_conf("broken", bridge_conf(w, name="broken", ipam={"type": "host-local", "dataDir": str(blocker / "x"),
                                                               "subnet": "10.250.10.0/24"}))
    e = w.cni("status", "broken", check=False)
    assert e.returncode == 1 and "error 50: host-local store unavailable" in e.stderr, e.stderr


def test_pinned_netns_helpers(world):
    w = world
    p = w.pod("pinned")
    assert any(line.split()[4] == p for line in open("/proc/self/mountinfo")), "netns pin is not a mount"
    assert w.in_ns(p, "ip", "-o", "link").stdout.count("\n") == 1  # only lo: a fresh namespace
    e = H.sh(H.BERTH_CNI, "netns-add", w.ns_dir, "pinned", check=False)
    assert e.returncode == 1 and "File exists" in e.stderr.replace("file exists", "File exists")
    H.sh(H.BERTH_CNI, "netns-del", p)
    assert not os.path.exists(p)
    assert not any(line.split()[4] == p for line in open("/proc/self/mountinfo"))
    H.sh(H.BERTH_CNI, "netns-del", p)  # removing twice is fine
