#!/usr/bin/python3
"""critest (cri-tools v1.26.1) against berthd, on this machine, as the issue's conformance
check runs it.

critest is not packaged by Debian and builds only from a fetched cri-tools snapshot (see
docs/conformance.md); it is looked up, never built here. Its test images must be in a
local registry under their upstream repository paths (registry.k8s.io/e2e-test-images/...,
gcr.io/k8s-staging-cri-tools/..., docker.io/library/...); berthd maps those registries to it.
Without critest or the registry the run reports "skipped" and exits 77.

critest creates host-network pods and host-IPC containers and does host-side mounts: it
runs in the machine's root namespaces, and berthd with it. Everything berthd makes lives
under one root and one state dir, removed at the end; the pods' bridge and cgroups too.

    tests/conformance/critest_berthd.py [--out DIR] [critest flags ...]
      e.g. -ginkgo.focus=Networking    -benchmark -benchmarking-params-file=F
Env: CRITEST (default /var/tmp/berth-anchors/cri-tools/critest), REGISTRY (127.0.0.1:5000),
     BERTH_BUILD (default ./build)
Prints "N passed, M failed, K skipped" and the failed specs; writes report.json and
specs.tsv (spec, state, seconds) to --out.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "cri"))
BUILD = os.environ.get("BERTH_BUILD", os.path.join(REPO, "build"))
CRITEST = os.environ.get("CRITEST", "/var/tmp/berth-anchors/cri-tools/critest")
REGISTRY = os.environ.get("REGISTRY", "127.0.0.1:5000")
BRIDGE, SUBNET = "berth-crit0", "10.98.0.0/16"


def skip(why):
    print(f"critest: skipped: {why}")
    sys.exit(77)


def config(root, state, cni_conf, cni_bin):
    mirrors = "".join(f'[registry."{h}"]\nmirrors = ["http://{REGISTRY}"]\n'
                      for h in ("registry.k8s.io", "gcr.io", "docker.io", "public.ecr.aws"))
    return f"""root = "{root}"
state_dir = "{state}"
[grpc]
max_threads = 256
[runtime]
shim = "{BUILD}/shim/berth-shim"
pause = "{BUILD}/cri/pause/berth-pause"
# no CAP_SYS_RESOURCE here: negative oom_score_adj values are clamped, as containerd's option
restrict_oom_score_adj = true
[runtime.handlers.berth]
binary = "{BUILD}/runtime/berth"
# this host's cgroup v2 tree has no resource controllers (cgroup-hybrid)
args = ["--allow-unenforced-limits"]
[cni]
conf_dir = "{cni_conf}"
bin_dirs = ["{cni_bin}", "/usr/lib/cni"]
cache_dir = "{root}/cni-cache"
{mirrors}"""


def write_cni(conf_dir, bin_dir, ipam_dir):
    os.makedirs(conf_dir)
    os.makedirs(bin_dir)
    os.symlink(os.path.join(BUILD, "cni", "berth-bridge"), os.path.join(bin_dir, "berth-bridge"))
    with open(os.path.join(conf_dir, "10-critest.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "critest", "plugins": [
            {"type": "berth-bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": ipam_dir, "ranges": [[{"subnet": SUBNET}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)


def summarize(report_path, out_dir):
    suites = json.load(open(report_path))
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed, rows = [], []
    for suite in suites:
        for sp in suite.get("SpecReports") or []:
            if sp.get("LeafNodeType") != "It":
                if sp.get("State") not in ("passed", "skipped", "pending"):
                    failed.append(f"[{sp.get('LeafNodeType')}] {sp.get('LeafNodeText', '')}")
                    counts["failed"] += 1
                continue
            name = " ".join((sp.get("ContainerHierarchyTexts") or []) + [sp.get("LeafNodeText", "")])
            state = sp.get("State")
            kind = "passed" if state == "passed" else "skipped" if state in ("skipped", "pending") else "failed"
            counts[kind] += 1
            if kind == "failed":
                failed.append(name)
            rows.append((name, kind, sp.get("RunTime", 0) / 1e9))
    with open(os.path.join(out_dir, "specs.tsv"), "w") as f:
        for r in sorted(rows):
            f.write(f"{r[0]}\t{r[1]}\t{r[2]:.2f}\n")
    for n in failed:
        print("FAILED:", n)
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return counts["failed"]


def remove_everything(sock):
    from cri_client import CriClient
    with CriClient(sock, timeout=60) as c:
        pb2 = c.pb2
        for p in c.runtime.ListPodSandbox(pb2.ListPodSandboxRequest()).items:
            for call, req in (("StopPodSandbox", pb2.StopPodSandboxRequest), ("RemovePodSandbox", pb2.RemovePodSandboxRequest)):
                try:
                    getattr(c.runtime, call)(req(pod_sandbox_id=p.id))
                except Exception as e:  # noqa: BLE001 - report and go on cleaning
                    print(f"cleanup: {call} {p.id[:12]}: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args, critest_args = ap.parse_known_args()
    if os.geteuid() != 0:
        skip("needs root")
    if not os.access(CRITEST, os.X_OK):
        skip(f"no critest at {CRITEST} (build cri-tools v1.26.1: docs/conformance.md)")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/k8s-staging-cri-tools/test-image-tag/tags/list", timeout=5)
    except OSError as e:
        skip(f"no registry with critest's images at {REGISTRY} ({e})")
    out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="critest-berthd-"))
    os.makedirs(os.path.join(out, "tmp"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="berth-critest.")
    state = tempfile.mkdtemp(prefix="bcrit", dir="/run")
    write_cni(os.path.join(work, "net.d"), os.path.join(work, "bin"), os.path.join(work, "ipam"))
    cfg = os.path.join(work, "berthd.toml")
    open(cfg, "w").write(config(os.path.join(work, "root"), state, os.path.join(work, "net.d"), os.path.join(work, "bin")))
    log = open(os.path.join(out, "berthd.log"), "wb")
    berthd = subprocess.Popen([os.path.join(BUILD, "cri", "berthd"), "--config", cfg], stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL)
    sock = os.path.join(state, "berthd.sock")
    shm_before = {l.split()[1] for l in open("/proc/sysvipc/shm").readlines()[1:]}
    rc = 1
    try:
        for _ in range(200):
            if os.path.exists(sock) or berthd.poll() is not None:
                break
            time.sleep(0.05)
        if berthd.poll() is not None:
            print(open(os.path.join(out, "berthd.log")).read()[-3000:])
            return 1
        env = dict(os.environ, TMPDIR=os.path.join(out, "tmp"))
        start = time.monotonic()
        with open(os.path.join(out, "critest.log"), "wb") as clog:
            r = subprocess.run([CRITEST, f"-runtime-endpoint=unix://{sock}", f"-image-endpoint=unix://{sock}",
                                f"-log_dir={out}/tmp", "-ginkgo.no-color", f"-ginkgo.json-report={out}/report.json",
                                f"-ginkgo.junit-report={out}/junit.xml"] + critest_args,
                               stdout=clog, stderr=subprocess.STDOUT, env=env)
        print(f"critest exit {r.returncode}, wall time {time.monotonic() - start:.1f} s, results in {out}")
        rc = 1 if summarize(os.path.join(out, "report.json"), out) else 0
    finally:
        try:
            remove_everything(sock)
        except Exception as e:  # noqa: BLE001
            print(f"cleanup: {e}")
        berthd.send_signal(signal.SIGTERM)
        berthd.wait(60)
        log.close()
        # critest's HostIpc specs leave 1 MiB SysV segments (ipcmk) on the host
        for l in open("/proc/sysvipc/shm").readlines()[1:]:
            f = l.split()
            if f[1] not in shm_before and f[3] == "1048576" and f[6] == "0":
                subprocess.run(["ipcrm", "-m", f[1]])
        subprocess.run(["ip", "link", "del", BRIDGE], stderr=subprocess.DEVNULL)
        # berthd's default cgroup parent for pods that name none (critest's), once empty
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if f[f.index("-") + 1] == "cgroup2" and os.path.isdir(f[4] + "/berth"):
                subprocess.run(["rmdir", f[4] + "/berth"], stderr=subprocess.DEVNULL)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
