"""Image garbage collection against berthd whose image root is a small tmpfs: with the
filesystem over imageGCHighThresholdPercent, berthlet removes unused images older than
imageMinimumGCAge, least recently used first, until usage is at imageGCLowThresholdPercent;
images of running containers and pinned images are kept.

berthd only: containerd 1.6 (Debian's) reports no image as pinned, not even its sandbox
image, so the pinned case cannot be set up there (containerd 1.7 pins the sandbox image)."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import agent_lib as L
from agent_lib import container, pod_manifest, running
from conftest import ROOT, TAG, CGROUP_ROOT

PAYLOAD = 10 << 20
NAMES = ["gc-used", "gc-was-used", "gc-pinned", "gc-old-a", "gc-old-b"]
MIN_AGE = 20


def ref(name):
    return f"docker.io/library/{name}:1"


def fs_usage(path):
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def test_image_gc_frees_unused_least_recently_used_down_to_low(registry, tmp_path):
    root = ROOT / "gc-berthd"
    lib = root / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m", "berthlet-gc-test", str(lib)], check=True)
    state = Path(f"/run/btg{TAG[:6]}")
    # NetworkReady needs a CNI config; the pods use the host's network and never call it.
    L.write_cni_conf(root / "net.d", f"bt-gc{TAG[:4]}", "10.231.78.0/24", root / "ipam")
    berthd = L.Berthd(root, registry.addr, root / "net.d", "/usr/lib/cni", state)
    berthd.extra_config = f'[image]\npinned_images = ["{ref("gc-pinned")}"]\n'
    berthlet = None
    cri = L.Cri(state / "berthd.sock", ROOT / "pycri")
    try:
        for name in NAMES:
            payload = os.urandom(PAYLOAD)  # incompressible: the layer is as big stored as pulled
            layer = L.oci_image.Layer(L.oci_image.busybox_tar(lambda t, p=payload: t.file("payload", p)), "gzip")
            L.oci_image.push(L.oci_image.Image([layer]), registry.addr, f"library/{name}:1")
        berthd.start()
        berthd.wait_ready(cri)
        for name in NAMES:
            cri.img.PullImage(cri.pb.PullImageRequest(image=cri.pb.ImageSpec(image=ref(name))), timeout=120)
        images = {img.repo_tags[0]: img for img in cri.img.ListImages(cri.pb.ListImagesRequest(), timeout=30).images}
        assert images[ref("gc-pinned")].pinned and not images[ref("gc-old-a")].pinned
        mountpoint = cri.img.ImageFsInfo(cri.pb.ImageFsInfoRequest(), timeout=30).image_filesystems[0].fs_id.mountpoint
        capacity, available = fs_usage(mountpoint)
        used_pct = 100 - available * 100 // capacity
        # low: berthlet must free more than one old image's reported size and at most both
        # (then the more recently used gc-was-used is kept).
        sizes = sorted(images[ref(n)].size for n in ("gc-old-a", "gc-old-b"))
        want_need = (sizes[1] + sum(sizes)) // 2
        low = 100 - (available + want_need) * 100 // capacity
        need = capacity * (100 - low) // 100 - available
        assert sizes[1] < need <= sum(sizes), (sizes, need, low, used_pct)
        high = used_pct - 2
        assert low < high, (low, high, used_pct)

        cfg = tmp_path / "kubelet.yaml"
        cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                       f"imageGCHighThresholdPercent: {high}\nimageGCLowThresholdPercent: {low}\n"
                       f"imageMinimumGCAge: {MIN_AGE}s\nimageGCPeriod: 1s\n")
        berthlet = L.Berthlet(ROOT / "berthlets" / "image-gc", berthd.sock, CGROUP_ROOT)
        started = time.monotonic()
        berthlet.start("--config", str(cfg))
        for name in ("gc-used", "gc-was-used"):
            c = container("c", L.SLEEPER, image=f"{name}:1")
            berthlet.write(f"{name}.yaml", pod_manifest(name, [c], hostNetwork=True))
        for name in ("gc-used", "gc-was-used"):
            berthlet.wait_pod(name, lambda p: running(p, "c"))
        # gc-was-used is used until now (seen by two GC rounds): more recently than the
        # never used gc-old-*.
        time.sleep(2.5)
        berthlet.remove("gc-was-used.yaml")
        L.wait_for(lambda: berthlet.pod("gc-was-used") is None and len(cri.containers()) == 1, timeout=30,
                   what="gc-was-used's pod to go")
        assert time.monotonic() - started < MIN_AGE - 3, "too slow to test the LRU order"
        def freed_line():
            return next((line for line in berthlet.log().splitlines()
                         if "image GC: freed" in line and "image GC: freed 0 of" not in line), None)
        freed = L.wait_for(freed_line, timeout=MIN_AGE + 30, what="image GC")
        gc_seconds = time.monotonic() - started
        left = {img.repo_tags[0] for img in cri.img.ListImages(cri.pb.ListImagesRequest(), timeout=30).images}
        assert left == {ref("gc-used"), ref("gc-was-used"), ref("gc-pinned")}, (left, berthlet.log()[-3000:])
        log = berthlet.log()
        # Younger than imageMinimumGCAge, nothing was eligible: said once, not every second.
        assert log.count("image GC: freed 0 of") == 1, log[-3000:]
        _, available_after = fs_usage(mountpoint)
        used_after = 100 - available_after * 100 // capacity
        assert used_after <= low, (used_after, low)
        print(f"\nimage GC: {capacity >> 20} MiB fs at {used_pct}% (high {high}%, low {low}%), target {need} bytes; "
              f"{freed.split('image GC: ')[1]}; now {used_after}%; {gc_seconds:.1f}s after berthlet start "
              f"(min age {MIN_AGE}s)")
    finally:
        if berthlet is not None:
            for f in berthlet.manifests.iterdir():
                f.unlink()
            with contextlib.suppress(AssertionError):
                L.wait_for(lambda: berthlet.pods() == [], timeout=60, what="berthlet to remove every pod")
            berthlet.stop()
        with contextlib.suppress(Exception):
            cri.remove_everything()
        berthd.stop()
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mnt = line.split()[4]
            if mnt.startswith((str(state) + "/", str(lib) + "/")) or mnt in (str(lib), str(state)):
                subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(state, ignore_errors=True)
