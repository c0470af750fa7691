"""Pods and containers on a real berthd: the fixtures' world and small helpers.

A world is a berthd with berth as its OCI runtime, berth-shim, berth-pause and
berth-bridge as its CNI plugin (bridge + host-local store on a private bridge), a local
docker-registry holding busybox-static images, pods under a cgroup parent of the run.
After each test every pod is removed through the CRI and `assert_no_leaks` checks that
nothing berthd made is left: records, shims, runtime state, mounts, pins, cgroups, CNI
cache entries, IP leases, active snapshots.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(REPO, "build")
BERTH = os.environ.get("BERTH", os.path.join(BUILD, "runtime", "berth"))
BERTH_SHIM = os.environ.get("BERTH_SHIM", os.path.join(BUILD, "shim", "berth-shim"))
BERTH_PAUSE = os.environ.get("BERTH_PAUSE", os.path.join(BUILD, "cri", "pause", "berth-pause"))
BERTH_BRIDGE = os.environ.get("BERTH_BRIDGE", os.path.join(BUILD, "cni", "berth-bridge"))
TAG = os.environ.get("CRI_TAG", str(os.getpid() % 10000))
CGROUP_PARENT = f"/berth-cri-test-{TAG}"


def wait_for(fn, timeout=30, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def cgroup2_mount():
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        sep = f.index("-")
        if f[sep + 1] == "cgroup2":
            return f[4]
    return None


def write_cni(conf_dir, bin_dir, bridge, subnet, data_dir, plugins_extra=()):
    """berth-bridge (its bridge + host-local configuration) and portmap, CNI 1.0."""
    os.makedirs(conf_dir, exist_ok=True)
    os.makedirs(bin_dir, exist_ok=True)
    link = os.path.join(bin_dir, "berth-bridge")
    if not os.path.exists(link):
        os.symlink(BERTH_BRIDGE, link)
    plugins = [{"type": "berth-bridge", "bridge": bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}},
               {"type": "portmap", "capabilities": {"portMappings": True}}]
    plugins += list(plugins_extra)
    with open(os.path.join(conf_dir, "10-berth-test.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "berth-test", "plugins": plugins}, f)


def set_filter(f, kw):
    """A List call's filter: labels={...}, state=..., or fields by name (id, pod_sandbox_id)."""
    for k, v in kw.items():
        if k == "labels":
            for lk, lv in v.items():
                f.label_selector[lk] = lv
        elif k == "state":
            f.state.state = v
        else:
            setattr(f, k, v)


class World:
    """berthd configured for pods; its client and the CRI helpers the tests use."""

    def __init__(self, berthd, pb2, registry_url, cni_conf, cni_bin, cni_cache, ipam_dir, extra_config=""):
        self.berthd = berthd
        self.pb2 = pb2
        self.cni_cache = cni_cache
        self.ipam_dir = ipam_dir
        self.state_dir = berthd.state
        self.root = berthd.root
        berthd.write_config(f"""
[runtime]
shim = "{BERTH_SHIM}"
pause = "{BERTH_PAUSE}"
restrict_oom_score_adj = true
[runtime.handlers.berth]
binary = "{BERTH}"
# this host's cgroup v2 tree has no resource controllers (cgroup-hybrid): limits are not
# enforced here (the VM suite proves enforcement)
args = ["--allow-unenforced-limits"]
{extra_config}
[cni]
conf_dir = "{cni_conf}"
bin_dirs = ["{cni_bin}", "/usr/lib/cni"]
cache_dir = "{cni_cache}"
[registry."docker.io"]
mirrors = ["{registry_url}"]
""")
        self.client = None

    def up(self):
        """Starts berthd and connects."""
        self.berthd.start()
        self.client = self.berthd.client()
        self.rt = self.client.runtime
        return self

    def restart(self, sig=signal.SIGTERM):
        if self.client:
            self.client.close()
        if sig == signal.SIGKILL:
            self.berthd.kill9()
        else:
            self.berthd.stop(sig)
        return self.up()

    # ---- configs ----------------------------------------------------------------
    def pod_config(self, name=None, **kw):
        pb2 = self.pb2
        name = name or "pod-" + uuid.uuid4().hex[:8]
        cfg = pb2.PodSandboxConfig(
            metadata=pb2.PodSandboxMetadata(name=name, namespace="berth-test", uid=uuid.uuid4().hex, attempt=0),
            hostname=kw.pop("hostname", name),
            log_directory=kw.pop("log_directory", ""))
        cfg.linux.cgroup_parent = kw.pop("cgroup_parent", f"{CGROUP_PARENT}/pod-{name}")
        ns = cfg.linux.security_context.namespace_options
        ns.pid = kw.pop("pid", pb2.CONTAINER)
        ns.network = kw.pop("network", pb2.POD)
        ns.ipc = kw.pop("ipc", pb2.POD)
        for k, v in kw.pop("sysctls", {}).items():
            cfg.linux.sysctls[k] = v
        for k, v in kw.pop("labels", {}).items():
            cfg.labels[k] = v
        if "dns" in kw:
            servers, searches, options = kw.pop("dns")
            cfg.dns_config.servers.extend(servers)
            cfg.dns_config.searches.extend(searches)
            cfg.dns_config.options.extend(options)
        for pm in kw.pop("ports", []):
            cfg.port_mappings.add(**pm)
        assert not kw, f"unknown pod options {kw}"
        return cfg

    def container_config(self, name=None, command=None, args=None, image="busybox", **kw):
        pb2 = self.pb2
        c = pb2.ContainerConfig(metadata=pb2.ContainerMetadata(name=name or "c-" + uuid.uuid4().hex[:8]),
                                image=pb2.ImageSpec(image=image))
        if command is not None:
            c.command.extend(command)
        if args is not None:
            c.args.extend(args)
        for k, v in kw.pop("env", {}).items():
            c.envs.add(key=k, value=v)
        for k, v in kw.pop("labels", {}).items():
            c.labels[k] = v
        if "log_path" in kw:
            c.log_path = kw.pop("log_path")
        if "working_dir" in kw:
            c.working_dir = kw.pop("working_dir")
        for m in kw.pop("mounts", []):
            c.mounts.add(**m)
        sc = c.linux.security_context
        if "run_as_user" in kw:
            sc.run_as_user.value = kw.pop("run_as_user")
        if "run_as_username" in kw:
            sc.run_as_username = kw.pop("run_as_username")
        if "readonly_rootfs" in kw:
            sc.readonly_rootfs = kw.pop("readonly_rootfs")
        if "drop" in kw:
            sc.capabilities.drop_capabilities.extend(kw.pop("drop"))
        if "pid" in kw:
            sc.namespace_options.pid = kw.pop("pid")
        for flag in ("tty", "stdin", "stdin_once"):
            if flag in kw:
                setattr(c, flag, kw.pop(flag))
        for k, v in kw.pop("resources", {}).items():
            setattr(c.linux.resources, k, v)
        assert not kw, f"unknown container options {kw}"
        return c

    # ---- calls -------------------------------------------------------------------
    def run_pod(self, cfg=None, handler="", **kw):
        cfg = cfg or self.pod_config(**kw)
        pid = self.rt.RunPodSandbox(self.pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler)).pod_sandbox_id
        return pid, cfg

    def pod_status(self, pod_id, verbose=False):
        return self.rt.PodSandboxStatus(self.pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose))

    def stop_pod(self, pod_id):
        self.rt.StopPodSandbox(self.pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))

    def remove_pod(self, pod_id):
        self.rt.RemovePodSandbox(self.pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def pods(self, **filter_kw):
        req = self.pb2.ListPodSandboxRequest()
        set_filter(req.filter, filter_kw)
        return list(self.rt.ListPodSandbox(req).items)

    def create(self, pod_id, pod_cfg, cfg=None, **kw):
        cfg = cfg or self.container_config(**kw)
        return self.rt.CreateContainer(self.pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg)).container_id

    def start(self, cid):
        self.rt.StartContainer(self.pb2.StartContainerRequest(container_id=cid))

    def run(self, pod_id, pod_cfg, **kw):
        cid = self.create(pod_id, pod_cfg, **kw)
        self.start(cid)
        return cid

    def stop(self, cid, timeout=0):
        self.rt.StopContainer(self.pb2.StopContainerRequest(container_id=cid, timeout=timeout))

    def remove(self, cid):
        self.rt.RemoveContainer(self.pb2.RemoveContainerRequest(container_id=cid))

    def status(self, cid, verbose=False):
        return self.rt.ContainerStatus(self.pb2.ContainerStatusRequest(container_id=cid, verbose=verbose))

    def state(self, cid):
        return self.status(cid).status.state

    def containers(self, **filter_kw):
        req = self.pb2.ListContainersRequest()
        set_filter(req.filter, filter_kw)
        return list(self.rt.ListContainers(req).containers)

    def exec(self, cid, cmd, timeout=10):
        r = self.rt.ExecSync(self.pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout))
        return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def wait_exited(self, cid, timeout=30):
        return wait_for(lambda: self.state(cid) == self.pb2.CONTAINER_EXITED, timeout, what=f"{cid[:12]} to exit")

    def remove_everything(self):
        for p in self.pods():
            with contextlib.suppress(grpc.RpcError):
                self.stop_pod(p.id)
            self.remove_pod(p.id)

    # ---- leak checks -------------------------------------------------------------
    def assert_no_leaks(self, settle=5.0):
        """berthd removes a container's files just after answering: give it a moment."""
        deadline = time.monotonic() + settle
        while True:
            problems = self.leaks()
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not problems, "leaks: " + "; ".join(problems)

    def leaks(self):
        problems = []
        if self.pods():
            problems.append(f"pod sandboxes left: {[p.id[:12] for p in self.pods()]}")
        if self.containers():
            problems.append(f"containers left: {[c.id[:12] for c in self.containers()]}")
        problems += leaks_under(self.state_dir, self.root)
        for name in ("shims", "exits", "sandboxes", "containers", "runtime/berth"):
            d = os.path.join(self.state_dir, name)
            left = [e for e in os.listdir(d)] if os.path.isdir(d) else []
            if left:
                problems.append(f"{d} not empty: {left[:5]}")
        results = os.path.join(self.cni_cache, "results")
        if os.path.isdir(results) and os.listdir(results):
            problems.append(f"CNI cache entries left: {os.listdir(results)}")
        leases = [f for f in os.listdir(os.path.join(self.ipam_dir, "berth-test"))
                  if re.match(r"^[0-9a-f.:]+$", f) and f.count(".") == 3] if os.path.isdir(
            os.path.join(self.ipam_dir, "berth-test")) else []
        if leases:
            problems.append(f"IP leases left: {leases}")
        db = os.path.join(self.root, "meta.db")
        if os.path.exists(db):
            with contextlib.closing(sqlite3.connect(db)) as c:
                n = c.execute("SELECT count(*) FROM snapshots WHERE kind != 0").fetchone()[0]
            if n:
                problems.append(f"{n} active snapshots left")
        return problems


def leaks_under(*dirs):
    """Mounts under the dirs, processes naming them, container cgroups of the run."""
    problems = []
    mounts = [l.split()[4] for l in open("/proc/self/mountinfo")]
    for d in dirs:
        left = [m for m in mounts if m == d or m.startswith(d + "/")]
        if left:
            problems.append(f"mounts left: {left[:5]}")
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(d in cmd for d in dirs) and "berthd" not in cmd.split(" ")[0]:
            problems.append(f"process left: {p} {cmd[:120]}")
    cg = cgroup2_mount()
    if cg and os.path.isdir(cg + CGROUP_PARENT):
        for dirpath, dirnames, _ in os.walk(cg + CGROUP_PARENT):
            for dn in dirnames:
                if re.fullmatch(r"[0-9a-f]{64}", dn):
                    problems.append(f"container cgroup left: {os.path.join(dirpath, dn)}")
    return problems


def pause_processes(state_dir):
    """PIDs of berth-pause processes whose shim belongs to this berthd."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if open(f"/proc/{p}/comm").read().strip() == "pause":
                out.append(int(p))
        except OSError:
            pass
    return out
