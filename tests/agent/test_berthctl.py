"""berthctl against both CRI endpoints of this suite: containerd 1.6 (its CRI plugin, runc)
and berthd. An operator's round: version, pull, images, runp/create/start, ps, logs,
exec -s, stop, rm, stopp, rmp, from YAML and JSON config files."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import agent_lib as L
from conftest import CGROUP_ROOT

BERTHCTL = os.environ.get("BERTHCTL", str(L.REPO / "build" / "ctl" / "berthctl"))


def ctl(sock, *args, timeout=120, check=True):
    p = subprocess.run([BERTHCTL, "-r", f"unix://{sock}", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"berthctl {' '.join(args)}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def test_berthctl_round_trip(cri_world, tmp_path):
    ep, cri = cri_world
    sock = ep.sock
    out = ctl(sock, "version").stdout
    assert f"RuntimeName:  {ep.runtime_name}\n" in out and "RuntimeApiVersion:  v1\n" in out
    assert "Image is up to date for sha256:" in ctl(sock, "pull", "busybox:1.36").stdout
    rows = [r.split() for r in ctl(sock, "images").stdout.splitlines()]
    assert rows[0] == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert ["docker.io/library/busybox", "1.36"] in [r[:2] for r in rows[1:]]
    assert any(i["repoTags"] == ["docker.io/library/busybox:1.36"]
               for i in json.loads(ctl(sock, "images", "-o", "json").stdout)["images"])

    name = "ctl-" + uuid.uuid4().hex[:8]
    logs = tmp_path / "logs"
    logs.mkdir()
    pod_yaml = tmp_path / "pod.yaml"
    pod_yaml.write_text(f"""metadata:
  name: {name}
  namespace: berthctl
  uid: {uuid.uuid4().hex}
log_directory: {logs}
linux:
  cgroup_parent: {CGROUP_ROOT}/{name}
  security_context:
    namespace_options:
      network: NODE
""")
    c_json = tmp_path / "c.json"
    c_json.write_text(json.dumps({"metadata": {"name": "main"}, "image": {"image": "busybox:1.36"},
                                  "command": ["sh", "-c", "echo hello; echo oops >&2; sleep 1000"],
                                  "logPath": "main.log"}))
    pod_id = ctl(sock, "runp", str(pod_yaml)).stdout.strip()
    try:
        cid = ctl(sock, "create", pod_id, str(c_json), str(pod_yaml)).stdout.strip()
        assert ctl(sock, "start", cid).stdout.strip() == cid
        ps = ctl(sock, "ps", "--pod", pod_id).stdout.splitlines()
        assert ps[1].split()[0] == cid[:13] and "Running" in ps[1] and ps[1].split()[-1] == name
        assert ctl(sock, "pods", "-q", "--name", name).stdout == pod_id + "\n"
        L.wait_for(lambda: "oops" in ctl(sock, "logs", cid).stderr, 10, what="the container's log")
        p = ctl(sock, "logs", cid)
        assert (p.stdout, p.stderr) == ("hello\n", "oops\n")
        p = ctl(sock, "exec", "-s", cid, "sh", "-c", "echo in; exit 4", check=False)
        assert (p.returncode, p.stdout) == (4, "in\n")
        assert json.loads(ctl(sock, "inspect", cid).stdout)["status"]["state"] == "CONTAINER_RUNNING"
        assert ctl(sock, "stop", cid).stdout == cid + "\n"
        assert ctl(sock, "ps", "-a", "-q", "--pod", pod_id, "--state", "exited").stdout == cid + "\n"
        assert ctl(sock, "rm", cid).stdout == cid + "\n"
        assert ctl(sock, "stopp", pod_id).stdout == f"Stopped sandbox {pod_id}\n"
        assert ctl(sock, "rmp", pod_id).stdout == f"Removed sandbox {pod_id}\n"
        assert ctl(sock, "pods", "-q", "--name", name).stdout == ""
    finally:
        ctl(sock, "rmp", "-f", pod_id, check=False)
