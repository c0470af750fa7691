"""berthctl, Berth's admin CLI, against a real berthd (the make_world fixture: berth, berth-shim,
CNI bridge, local registry). Output formats follow crictl's; these tests check what an
operator relies on: ids, tables, JSON/YAML that parse, exit codes, logs and streams."""

import json
import os
import re
import queue
import select
import subprocess
import threading
import time

import pytest
import yaml
from google.protobuf import json_format

import pod_lib

BERTHCTL = os.environ.get("BERTHCTL", os.path.join(pod_lib.BUILD, "ctl", "berthctl"))


def ctl(world, *args, input=None, timeout=60, check=True):
    """Runs berthctl against the world's berthd: CompletedProcess (text)."""
    p = subprocess.run([BERTHCTL, "-r", "unix://" + world.berthd.socket] + list(args), input=input,
                       capture_output=True, text=True, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"berthctl {' '.join(args)}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


class Lines:
    """A running berthctl whose stdout lines are read by a thread (select on a buffered pipe
    would miss lines already buffered)."""

    def __init__(self, world, *args):
        self.proc = subprocess.Popen([BERTHCTL, "-r", "unix://" + world.berthd.socket] + list(args),
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.q = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line)

    def next(self, timeout=10):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from berthctl within {timeout}s") from None

    def until(self, pattern, timeout=10):
        """The lines read up to the first one matching `pattern` (whole line)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            line = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(line)
            if re.fullmatch(pattern, line.rstrip("\n")):
                return seen

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.thread.join(5)


def write_configs(world, tmp_path, command, fmt="json", name=None):
    """A pod config and a container config as files: (pod_path, container_path, pod_cfg)."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    pod_cfg = world.pod_config(name=name, log_directory=str(logs), labels={"app": "ctl-test"})
    c_cfg = world.container_config(command=command, log_path="c.log", labels={"role": "main"})
    pod_d = json_format.MessageToDict(pod_cfg, preserving_proto_field_name=(fmt == "yaml"))
    c_d = json_format.MessageToDict(c_cfg)
    pod_path, c_path = tmp_path / f"pod.{fmt}", tmp_path / f"c-{c_cfg.metadata.name}.json"
    pod_path.write_text(yaml.safe_dump(pod_d) if fmt == "yaml" else json.dumps(pod_d))
    c_path.write_text(json.dumps(c_d))
    return str(pod_path), str(c_path), pod_cfg


def run_container(world, tmp_path, command, fmt="json"):
    pod_path, c_path, pod_cfg = write_configs(world, tmp_path, command, fmt)
    pod_id = ctl(world, "runp", pod_path).stdout.strip()
    cid = ctl(world, "create", pod_id, c_path, pod_path).stdout.strip()
    assert ctl(world, "start", cid).stdout.strip() == cid
    return pod_id, cid, pod_cfg


def test_version_info_and_usage_errors(world):
    out = ctl(world, "version").stdout
    assert re.search(r"^Version:  \S+\nRuntimeName:  berth\nRuntimeVersion:  \S+\nRuntimeApiVersion:  v1\n$", out)
    info = json.loads(ctl(world, "info").stdout)
    assert {c["type"] for c in info["status"]["conditions"]} >= {"RuntimeReady", "NetworkReady"}
    assert yaml.safe_load(ctl(world, "info", "-o", "yaml").stdout)["status"] == info["status"]
    assert ctl(world, "--version").stdout.startswith("berthctl version ")
    for bad in (["no-such-verb"], ["ps", "--no-such-flag"], ["logs"], ["ps", "-o", "xml"]):
        p = ctl(world, *bad, check=False)
        assert p.returncode == 2, (bad, p.stdout, p.stderr)
        assert p.stderr.strip()


def test_unreachable_endpoint_fails_within_the_timeout(tmp_path):
    start = time.monotonic()
    p = subprocess.run([BERTHCTL, "-r", f"unix://{tmp_path}/nothing.sock", "-t", "1", "version"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert time.monotonic() - start < 3
    assert re.search(r"berthctl: Version: (Unavailable|DeadlineExceeded): ", p.stderr), p.stderr
    # CONTAINER_RUNTIME_ENDPOINT is the default, as with crictl.
    env = dict(os.environ, CONTAINER_RUNTIME_ENDPOINT=f"unix://{tmp_path}/other.sock")
    p = subprocess.run([BERTHCTL, "-t", "1", "version"], capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 1 and "Version: " in p.stderr


def test_pull_images_inspecti_rmi(world):
    ref = "docker.io/library/busybox:latest"
    image_id = ctl(world, "images", "-q").stdout.split()
    assert len(image_id) == 1 and image_id[0].startswith("sha256:")
    assert ctl(world, "rmi", "busybox").stdout == f"Deleted: {ref}\n"
    assert ctl(world, "images", "-q").stdout == ""
    p = ctl(world, "pull", "busybox", timeout=120)
    # Off a terminal: plain lines, no spinner or escape sequences.
    assert p.stdout == f"Image is up to date for {image_id[0]}\n"
    assert "\r" not in p.stderr and "\x1b" not in p.stderr
    assert "Pulling image busybox" in p.stderr and re.search(r"Pulled busybox \(\d[\d.]*[kM]?B\) in ", p.stderr)
    table = ctl(world, "images").stdout.splitlines()
    assert re.match(r"^IMAGE\s{3,}TAG\s{3,}IMAGE ID\s{3,}SIZE$", table[0])
    assert table[1].split() == ["docker.io/library/busybox", "latest", image_id[0][7:20], table[1].split()[3]]
    assert table[0].index("TAG") == table[1].index("latest")  # aligned columns
    assert re.match(r"^\d[\d.]*[kM]?B$", table[1].split()[3])
    digests = ctl(world, "images", "--digests").stdout.splitlines()
    assert digests[0].split()[:3] == ["IMAGE", "TAG", "DIGEST"]
    listed = json.loads(ctl(world, "images", "-o", "json").stdout)["images"]
    assert [i["id"] for i in listed] == image_id and listed[0]["repoTags"] == [ref]
    assert int(listed[0]["size"]) > 0
    assert yaml.safe_load(ctl(world, "images", "-o", "yaml").stdout)["images"][0]["id"] == image_id[0]
    status = json.loads(ctl(world, "inspecti", "busybox").stdout)
    assert status["status"]["id"] == image_id[0]
    assert yaml.safe_load(ctl(world, "inspecti", "-o", "yaml", image_id[0]).stdout)["status"]["id"] == image_id[0]
    p = ctl(world, "inspecti", "no-such-image", check=False)
    assert p.returncode == 1 and "no-such-image" in p.stderr
    p = ctl(world, "pull", "no-such-image", check=False, timeout=120)
    assert p.returncode == 1 and "PullImage:" in p.stderr
    # --prune keeps images in use; --all removes the rest.
    ctl(world, "rmi", "--prune")
    assert ctl(world, "images", "-q").stdout.split() == []
    ctl(world, "pull", "busybox", timeout=120)


def test_pod_and_container_lifecycle_from_yaml_and_json(world, tmp_path):
    pb2 = world.pb2
    pod_id, cid, pod_cfg = run_container(world, tmp_path, ["sleep", "1000"], fmt="yaml")
    name = pod_cfg.metadata.name
    assert re.fullmatch(r"[0-9a-f]{64}", pod_id) and re.fullmatch(r"[0-9a-f]{64}", cid)
    table = ctl(world, "pods").stdout.splitlines()
    assert re.match(r"^POD ID\s{3,}CREATED\s{3,}STATE\s{3,}NAME\s{3,}NAMESPACE\s{3,}ATTEMPT\s{3,}RUNTIME$", table[0])
    assert re.match(rf"^{pod_id[:13]}\s+\d+ seconds? ago\s+|^{pod_id[:13]}\s+Less than a second ago", table[1])
    assert table[1].split()[-5:] == ["Ready", name, "berth-test", "0", "(default)"]
    assert ctl(world, "pods", "-q", "--name", name[:6], "--namespace", "berth-test", "--state", "ready",
               "--label", "app=ctl-test").stdout == pod_id + "\n"
    assert ctl(world, "pods", "-q", "--label", "app=other").stdout == ""
    assert ctl(world, "pods", "-q", "--state", "notready").stdout == ""
    assert json.loads(ctl(world, "pods", "-o", "json", "--latest").stdout)["items"][0]["id"] == pod_id
    ps = ctl(world, "ps").stdout.splitlines()
    assert re.match(r"^CONTAINER\s{3,}IMAGE\s{3,}CREATED\s{3,}STATE\s{3,}NAME\s{3,}ATTEMPT\s{3,}POD ID\s{3,}POD$", ps[0])
    assert ps[1].split()[0] == cid[:13] and ps[1].split()[-3:] == ["0", pod_id[:13], name]
    assert "Running" in ps[1]
    assert ctl(world, "ps", "-q", "--pod", pod_id[:12], "--label", "role=main").stdout == cid + "\n"
    assert ctl(world, "ps", "-q", "--state", "exited").stdout == ""
    listed = json.loads(ctl(world, "ps", "-o", "json").stdout)["containers"]
    assert [c["id"] for c in listed] == [cid] and listed[0]["state"] == "CONTAINER_RUNNING"
    st = json.loads(ctl(world, "inspect", cid[:10]).stdout)
    assert st["status"]["id"] == cid and st["status"]["state"] == "CONTAINER_RUNNING"
    assert st["info"]["pid"] > 0
    assert yaml.safe_load(ctl(world, "inspect", "-o", "yaml", cid).stdout)["status"]["id"] == cid
    stp = json.loads(ctl(world, "inspectp", pod_id).stdout)
    assert stp["status"]["id"] == pod_id and stp["status"]["state"] == "SANDBOX_READY"
    assert yaml.safe_load(ctl(world, "inspectp", "-o", "yaml", pod_id).stdout)["status"]["metadata"]["name"] == name
    # rm refuses a running container without -f; rmp a ready pod likewise.
    p = ctl(world, "rm", cid, check=False)
    assert p.returncode == 1 and "running" in p.stderr
    assert ctl(world, "stop", cid).stdout == cid + "\n"
    assert world.state(cid) == pb2.CONTAINER_EXITED
    assert ctl(world, "ps", "-a", "-q", "--state", "exited").stdout == cid + "\n"
    assert ctl(world, "rm", cid).stdout == cid + "\n"
    assert world.containers() == []
    p = ctl(world, "rmp", pod_id, check=False)
    assert p.returncode == 1 and "stop it first" in p.stderr
    assert ctl(world, "stopp", pod_id).stdout == f"Stopped sandbox {pod_id}\n"
    assert ctl(world, "pods", "-q", "--state", "notready").stdout == pod_id + "\n"
    assert ctl(world, "rmp", pod_id).stdout == f"Removed sandbox {pod_id}\n"
    assert ctl(world, "pods", "-q").stdout == ""


def test_run_and_forced_removal_of_everything(world, tmp_path):
    pod_path, c_path, _ = write_configs(world, tmp_path, ["sleep", "1000"])
    cid = ctl(world, "run", c_path, pod_path).stdout.strip()
    assert world.state(cid) == world.pb2.CONTAINER_RUNNING
    assert ctl(world, "rm", "-f", "-a").stdout == cid + "\n"
    pods = ctl(world, "pods", "-q").stdout.split()
    assert len(pods) == 1
    assert ctl(world, "rmp", "-f", "-a").stdout == f"Removed sandbox {pods[0]}\n"
    assert world.pods() == []


@pytest.mark.parametrize("text,fmt,field", [
    ('{"metadatta": {"name": "x"}}', "json", "metadatta"),
    ("metadata:\n  name: x\n  uid: u\nlinux:\n  security_contxt: {}\n", "yaml", "security_contxt"),
    ('{"metadata": {"attempt": "many"}}', "json", "attempt"),
    ("metadata: [unclosed\n", "yaml", "not JSON or YAML"),
])
def test_bad_config_file_names_the_field(world, tmp_path, text, fmt, field):
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text)
    p = ctl(world, "runp", str(path), check=False)
    assert p.returncode == 1 and str(path) in p.stderr and field in p.stderr, p.stderr
    assert world.pods() == []
    p = ctl(world, "runp", str(tmp_path / "missing.json"), check=False)
    assert p.returncode == 1 and "missing.json: cannot open" in p.stderr


def test_exec_sync_and_streaming(world, tmp_path):
    _, cid, _ = run_container(world, tmp_path, ["sleep", "1000"])
    p = ctl(world, "exec", "-s", cid, "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (7, "out\n", "err\n")
    p = ctl(world, "exec", "-s", "--timeout", "1", cid, "sleep", "10", check=False)
    assert p.returncode != 0
    # Through the stream server (WebSocket, v5.channel.k8s.io): exit code and both streams.
    p = ctl(world, "exec", cid, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    # -i: stdin reaches the process, and its end closes the process' stdin.
    data = "".join(f"line {i}\n" for i in range(2000))
    p = ctl(world, "exec", "-i", cid, "sh", "-c", "cat; echo done", input=data)
    assert p.stdout == data + "done\n"
    p = ctl(world, "exec", "-i", cid, "wc", "-c", input="abc")
    assert p.stdout.strip() == "3"


def test_logs_tail_since_timestamps_and_follow(world, tmp_path):
    script = "i=0; while [ $i -lt 5 ]; do echo line$i; echo err$i >&2; i=$((i+1)); done; sleep 1000"
    _, cid, _ = run_container(world, tmp_path, ["sh", "-c", script])
    log = tmp_path / "logs" / "c.log"
    pod_lib.wait_for(lambda: log.exists() and "err4" in log.read_text(), 10, what="the log")
    p = ctl(world, "logs", cid)
    assert p.stdout == "".join(f"line{i}\n" for i in range(5))
    assert p.stderr == "".join(f"err{i}\n" for i in range(5))
    p = ctl(world, "logs", "--tail", "2", cid)
    assert (p.stdout + p.stderr).count("\n") == 2
    assert ctl(world, "logs", "--tail", "0", cid).stdout == ""
    assert ctl(world, "logs", "--since", "1h", cid).stdout.count("\n") == 5
    assert ctl(world, "logs", "--since", "2099-01-01T00:00:00Z", cid).stdout == ""
    stamped = ctl(world, "logs", "-t", cid).stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line0", stamped[0])
    # A partial line (P) is joined with the rest of it (F).
    with open(log, "a") as f:
        f.write("2024-01-01T00:00:00.000000000Z stdout P hello \n2024-01-01T00:00:00.1Z stdout F world\n")
    assert ctl(world, "logs", "--tail", "1", cid).stdout == "hello world\n"


def test_logs_follow_picks_up_new_lines_across_rotation(world, tmp_path):
    script = "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done"
    _, cid, _ = run_container(world, tmp_path, ["sh", "-c", script])
    log = tmp_path / "logs" / "c.log"
    pod_lib.wait_for(lambda: log.exists() and "tick2" in log.read_text(), 10, what="the log")
    follow = Lines(world, "logs", "-f", "--tail", "1", cid)
    try:
        first = follow.until(r"tick\d+")
        n = int(first[-1].strip()[4:])
        seen = follow.until(rf"tick{n + 5}")
        assert [int(x.strip()[4:]) for x in seen] == list(range(n + 1, n + 6))  # in order, none lost
        # Rotation as the kubelet does it: rename, then ReopenContainerLog.
        os.rename(log, str(log) + ".1")
        world.rt.ReopenContainerLog(world.pb2.ReopenContainerLogRequest(container_id=cid))
        pod_lib.wait_for(lambda: log.exists() and "tick" in log.read_text(), 10, what="the reopened log")
        fresh = int(log.read_text().split()[3][4:])
        follow.until(rf"tick{fresh + 3}")
        # The container stops: -f ends by itself.
        world.stop(cid)
        assert follow.proc.wait(timeout=10) == 0
    finally:
        follow.close()


def cgroup_of(pid):
    for line in open(f"/proc/{pid}/cgroup"):
        if line.startswith("0::"):
            return os.path.join(pod_lib.cgroup2_mount(), line.strip()[3:].lstrip("/"))
    return None


def test_stats_match_the_cgroup(world, tmp_path):
    _, cid, _ = run_container(world, tmp_path, ["sh", "-c", "while true; do :; done"])
    pid = json.loads(ctl(world, "inspect", cid).stdout)["info"]["pid"]
    cg = cgroup_of(pid)

    def usage_ns():
        for line in open(os.path.join(cg, "cpu.stat")):
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
    before = usage_ns()
    stats = json.loads(ctl(world, "stats", "-o", "json", "--id", cid).stdout)["stats"]
    after = usage_ns()
    assert [s["attributes"]["id"] for s in stats] == [cid]
    cpu = int(stats[0]["cpu"]["usageCoreNanoSeconds"]["value"])
    assert before - 1000 <= cpu <= after + 1000
    mem_current = os.path.join(cg, "memory.current")
    if os.path.exists(mem_current):
        ws = int(stats[0]["memory"]["workingSetBytes"]["value"])
        assert 0 < ws <= int(open(mem_current).read()) + (1 << 20)
    # The table: CPU % over the 1 s between the two samples, which lie inside the window in
    # which the cgroup's own counter grew by `grown` (a loaded machine gives the loop less
    # than a core: bound it by the cgroup, not by 100%).
    before = usage_ns()
    table = ctl(world, "stats").stdout.splitlines()
    grown = usage_ns() - before
    assert re.match(r"^CONTAINER\s{3,}NAME\s{3,}CPU %\s{3,}MEM\s{3,}DISK\s{3,}INODES$", table[0])
    row = table[1].split()
    assert row[0] == cid[:13]
    assert 0 < float(row[2]) / 100 * 0.95e9 <= grown, (table, grown)
    pods = ctl(world, "statsp").stdout.splitlines()
    assert pods[0].split()[:3] == ["POD", "POD", "ID"] and len(pods) == 2


def test_events_are_printed_while_a_container_starts(world, tmp_path):
    events = Lines(world, "events", "-o", "json")
    try:
        time.sleep(0.3)
        pod_id, cid, _ = run_container(world, tmp_path, ["sleep", "1000"])
        kinds = []
        while True:
            ev = json.loads(events.next())
            kinds.append((ev["containerId"], ev["containerEventType"]))
            if kinds[-1] == (cid, "CONTAINER_STARTED_EVENT"):
                break
        # The pod's own events name the pod's id, then the container's.
        assert kinds == [(pod_id, "CONTAINER_CREATED_EVENT"), (pod_id, "CONTAINER_STARTED_EVENT"),
                         (cid, "CONTAINER_CREATED_EVENT"), (cid, "CONTAINER_STARTED_EVENT")], kinds
    finally:
        events.close()
    # The one-line form.
    events = Lines(world, "events")
    try:
        time.sleep(0.3)
        ctl(world, "stop", cid)
        line = events.next()
        assert re.match(rf"^\S+Z CONTAINER_STOPPED_EVENT container={cid} pod=berth-test/pod-", line), line
    finally:
        events.close()


def test_exec_tty_raw_mode_and_resize(world, tmp_path):
    import fcntl
    import pty
    import signal
    import struct
    import termios
    _, cid, _ = run_container(world, tmp_path, ["sleep", "1000"])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([BERTHCTL, "-r", "unix://" + world.berthd.socket, "exec", "-it", cid, "sh"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""

    def read_until(needle, timeout=10):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while needle not in seen:
            assert time.monotonic() < deadline, f"no {needle!r} in {seen!r}"
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return seen
    try:
        os.write(master, b"stty size\n")
        read_until(b"24 80")
        # The local terminal is raw while the session runs: no local echo or line editing.
        assert not termios.tcgetattr(master)[3] & termios.ECHO
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        proc.send_signal(signal.SIGWINCH)
        time.sleep(0.5)
        os.write(master, b"stty size; exit 3\n")
        read_until(b"40 120")
        assert proc.wait(timeout=10) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
