"""berthd's ImageService end to end against a real registry (Debian's docker-registry on
127.0.0.1) with images built from busybox-static (tests/lib/oci_image.py)."""

import base64
import hashlib
import json
import os
import signal
import threading
import time

import grpc
import pytest

import oci_image
from registry import Registry

LIBRARY = "docker.io/library"


@pytest.fixture(scope="module")
def registry():
    with Registry() as reg:
        yield reg


@pytest.fixture(scope="module")
def pushed(registry):
    """Images pushed once per module: name -> summary (manifest, config, layers...)."""
    images = {}

    def push(kind, name, compression="gzip", fmt="oci"):
        key = (kind, name, compression, fmt)
        if key not in images:
            images[key] = oci_image.push(oci_image.build_image(kind, compression, fmt), registry.addr, name)
        return images[key]
    return push


def mirror_config(registry, extra=""):
    """docker.io mapped to the local registry: `busybox` resolves to it."""
    return f'[registry."docker.io"]\nmirrors = ["{registry.url}"]\n' + extra


@pytest.fixture
def berthd(make_berthd, registry):
    return make_berthd(mirror_config(registry)).start()


def files_under(path):
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        out += [os.path.join(dirpath, f) for f in filenames]
    return out


def content_blobs(root):
    """{digest: path} of every content-addressed blob file under the store root."""
    blobs = {}
    for p in files_under(os.path.join(root, "content")):
        name = os.path.basename(p)
        if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
            blobs["sha256:" + name] = p
    return blobs


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def snapshot_dirs(root):
    d = os.path.join(root, "snapshots")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def assert_store_consistent(b):
    """Every blob matches its digest and no temp/partial file is left in content/."""
    blobs = content_blobs(b.root)
    for digest, path in blobs.items():
        assert sha256_file(path) == digest, f"{path} does not match its digest"
    leftovers = [p for p in files_under(os.path.join(b.root, "content"))
                 if p not in blobs.values()]
    assert leftovers == [], f"partial content left behind: {leftovers}"
    return blobs


def test_pull_short_name_through_mirror(berthd, pushed):
    img = pushed("busybox", "library/busybox:latest")
    with berthd.client() as c:
        image_ref = c.pull("busybox")
        assert image_ref == img["image_id"]
        image, _ = c.status("busybox")
    assert image.id == img["image_id"]
    assert f"{LIBRARY}/busybox:latest" in image.repo_tags
    assert f"{LIBRARY}/busybox@{img['manifest']}" in image.repo_digests
    assert image.size > 0
    assert image.spec.image == img["image_id"]
    blobs = assert_store_consistent(berthd)
    for layer in img["layers"]:
        assert layer in blobs
    assert len(snapshot_dirs(berthd.root)) >= 1
    assert "msg=\"pulling image\"" in berthd.log() and "msg=\"image pulled\"" in berthd.log()


def test_list_and_filter(berthd, pushed):
    bb = pushed("busybox", "library/busybox:latest")
    ml = pushed("multilayer", "library/multi:1.0")
    with berthd.client() as c:
        c.pull("busybox")
        c.pull("docker.io/library/multi:1.0")
        ids = {i.id for i in c.list()}
        assert ids == {bb["image_id"], ml["image_id"]}
        only = c.list("multi:1.0")
        assert [i.id for i in only] == [ml["image_id"]]
        assert [i.id for i in c.list(ml["image_id"])] == [ml["image_id"]]
        assert c.list("not-there:latest") == []


def test_status_verbose_like_containerd(berthd, pushed):
    img = pushed("multilayer", "library/multi:1.0")
    with berthd.client() as c:
        c.pull("multi:1.0")
        image, info = c.status("multi:1.0", verbose=True)
        missing, missing_info = c.status("never-pulled:latest", verbose=True)
    assert image.id == img["image_id"]
    verbose = json.loads(info["info"])
    assert verbose["chainID"].startswith("sha256:")
    spec = verbose["imageSpec"]
    assert spec["rootfs"]["diff_ids"] == img["diff_ids"]
    assert spec["config"]["Cmd"] == ["cat", "/etc/berth-release"]
    assert missing is None and missing_info == {}


def test_user_from_image_config(make_berthd, registry):
    b = make_berthd(mirror_config(registry)).start()
    base = oci_image.Layer(oci_image.busybox_tar(), "gzip")
    named = oci_image.push(oci_image.Image([base], user="nobody"), registry.addr, "library/named:1")
    numeric = oci_image.push(oci_image.Image([base], user="1000:1000"), registry.addr, "library/numeric:1")
    with b.client() as c:
        c.pull("named:1")
        c.pull("numeric:1")
        n, _ = c.status("named:1")
        u, _ = c.status("numeric:1")
    assert n.username == "nobody" and not n.HasField("uid")
    assert u.uid.value == 1000 and u.username == ""
    assert named["image_id"] != numeric["image_id"]


def test_by_digest_and_by_id(berthd, pushed):
    img = pushed("busybox", "library/busybox:latest")
    by_digest = f"{LIBRARY}/busybox@{img['manifest']}"
    with berthd.client() as c:
        assert c.pull(by_digest) == img["image_id"]
        image, _ = c.status(by_digest)
        assert image.id == img["image_id"]
        assert by_digest in image.repo_digests
        assert c.status(img["image_id"])[0].id == img["image_id"]
        assert c.status(img["image_id"].split(":")[1])[0].id == img["image_id"]
        assert c.status(img["image_id"][:19])[0].id == img["image_id"]  # sha256: + 12 hex


def test_remove_and_garbage_collection(berthd, pushed):
    img = pushed("multilayer", "library/multi:1.0")
    with berthd.client() as c:
        c.pull("multi:1.0")
        before = c.fsinfo().image_filesystems[0]
        assert before.used_bytes.value > 0 and before.inodes_used.value > 0
        blobs = content_blobs(berthd.root)
        assert set(img["layers"]) <= set(blobs) and img["config"] in blobs
        assert snapshot_dirs(berthd.root)
        c.remove("multi:1.0")
        assert c.status("multi:1.0")[0] is None
        assert c.list() == []
        c.remove("multi:1.0")  # idempotent
        after = c.fsinfo().image_filesystems[0]
    assert content_blobs(berthd.root) == {}
    assert snapshot_dirs(berthd.root) == []
    assert after.used_bytes.value < before.used_bytes.value


def test_remove_keeps_shared_layers(berthd, pushed):
    bb = pushed("busybox", "library/busybox:latest")
    ml = pushed("multilayer", "library/multi:1.0")
    shared = bb["layers"][0]
    assert shared == ml["layers"][0]
    with berthd.client() as c:
        c.pull("busybox")
        c.pull("multi:1.0")
        c.remove(bb["image_id"])
        assert [i.id for i in c.list()] == [ml["image_id"]]
    blobs = content_blobs(berthd.root)
    assert shared in blobs and bb["config"] not in blobs


@pytest.mark.parametrize("compression,fmt", [("zstd", "oci"), ("none", "oci"), ("gzip", "docker")])
def test_layer_compressions_and_formats(berthd, pushed, compression, fmt):
    img = pushed("whiteout", f"library/wh-{compression}-{fmt}:1", compression, fmt)
    with berthd.client() as c:
        assert c.pull(f"wh-{compression}-{fmt}:1") == img["image_id"]
    assert_store_consistent(berthd)


def test_index_picks_host_platform(berthd, pushed):
    pushed("index", "library/multiarch:1")
    index = oci_image.build_image("index")  # deterministic: the same blobs as pushed
    amd64 = [child for child in index.children if child.arch == "amd64"][0]
    with berthd.client() as c:
        assert c.pull("multiarch:1") == amd64.image_id
        image, info = c.status("multiarch:1", verbose=True)
    assert json.loads(info["info"])["imageSpec"]["architecture"] == "amd64"


def test_pull_errors_are_clear(berthd, pb2):
    with berthd.client() as c:
        with pytest.raises(grpc.RpcError) as e:
            c.pull("no-such-image:1")
        assert "no-such-image" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            c.pull("UPPER/Case::bad")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as e:
            c.images.PullImage(pb2.PullImageRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert c.list() == []


def test_pull_with_sandbox_config(berthd, pushed, pb2):
    img = pushed("busybox", "library/busybox:latest")
    sandbox = pb2.PodSandboxConfig(metadata=pb2.PodSandboxMetadata(name="web", namespace="default", uid="u1"))
    with berthd.client() as c:
        assert c.pull("busybox", sandbox=sandbox) == img["image_id"]
    assert "pod=default/web" in berthd.log()


def test_basic_auth_from_request_and_from_config(make_berthd):
    with Registry(users={"alice": "s3cret"}) as reg:
        img = oci_image.push(oci_image.build_image("busybox"), reg.addr, "team/app:1", auth=("alice", "s3cret"))
        ref = f"{reg.addr}/team/app:1"
        host = f'[registry."{reg.addr}"]\nplain_http = true\n'
        b = make_berthd(host, name="anon").start()
        with b.client() as c:
            with pytest.raises(grpc.RpcError) as e:
                c.pull(ref)
            assert "401" in e.value.details() or "unauthorized" in e.value.details().lower()
            with pytest.raises(grpc.RpcError):
                c.pull(ref, username="alice", password="wrong")
            assert c.pull(ref, username="alice", password="s3cret") == img["image_id"]
            c.remove(ref)
            # AuthConfig.auth: base64("user:password"), as the kubelet passes pull secrets.
            token = base64.b64encode(b"alice:s3cret").decode()
            assert c.pull(ref, auth=token) == img["image_id"]
        b.stop()
        # Static credentials of the host from the config file.
        b2 = make_berthd(host + 'username = "alice"\npassword = "s3cret"\n', name="static").start()
        with b2.client() as c:
            assert c.pull(ref) == img["image_id"]
        assert "s3cret" not in b.log() + b2.log()


def test_token_auth(make_berthd):
    with Registry(users={"bob": "pw"}, token_auth=True) as reg:
        img = oci_image.push(oci_image.build_image("busybox"), reg.addr, "team/tok:1", auth=("bob", "pw"))
        b = make_berthd(f'[registry."{reg.addr}"]\nplain_http = true\n').start()
        with b.client() as c:
            assert c.pull(f"{reg.addr}/team/tok:1", username="bob", password="pw") == img["image_id"]
        assert reg.token.requests, "berthd never asked the token server"


def test_concurrent_pulls_share_work(make_berthd, registry, pushed):
    img = pushed("big", "library/big-shared:1")
    b = make_berthd(mirror_config(registry)).start()
    before = {d: registry.blob_gets(d) for d in img["layers"]}
    with b.client() as c1, b.client() as c2:
        f1 = c1.pull_future("big-shared:1")
        f2 = c2.pull_future("big-shared:1")
        assert f1.result().image_ref == img["image_id"]
        assert f2.result().image_ref == img["image_id"]
        assert len(c1.list()) == 1
    for d in img["layers"]:
        assert registry.blob_gets(d) - before[d] == 1, f"layer {d} fetched more than once"
    assert_store_consistent(b)


def test_kill9_during_pull_then_restart_and_pull_again(make_berthd, registry, pushed):
    img = pushed("big", "library/big-crash:1")
    b = make_berthd(mirror_config(registry)).start()
    with b.client() as c:
        fut = c.pull_future("big-crash:1")
        # Kill once some layer bytes have landed on disk (the pull is under way).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not fut.done():
            if "msg=fetching" in b.log() or "msg=unpack" in b.log():
                break
            time.sleep(0.01)
        b.kill9()
        with pytest.raises(grpc.RpcError):
            fut.result()
    b.start()
    with b.client() as c:
        # Whatever state the kill left, the store opens and the image is not half there.
        listed = c.list()
        assert listed == [] or [i.id for i in listed] == [img["image_id"]]
        assert c.pull("big-crash:1") == img["image_id"]
        image, info = c.status("big-crash:1", verbose=True)
    assert image.id == img["image_id"]
    blobs = assert_store_consistent(b)
    for layer in img["layers"]:
        assert layer in blobs
    # Every layer is unpacked: the big image's data files are all in some snapshot.
    found = [p for p in files_under(os.path.join(b.root, "snapshots")) if os.path.basename(p).startswith("blob")]
    assert len(found) == 20


REJECTED = ["hostile-traversal", "hostile-symlink", "hostile-hardlink"]


def assert_nothing_outside(workdir, passwd_before, allowed_inside=None):
    outside = ["/escape-absolute", "/tmp/escape-symlink", "/tmp/escape-symlink-abs",
               "/escape-traversal", "/tmp/escape-traversal"]
    assert [p for p in outside if os.path.lexists(p)] == []
    escaped = [p for p in files_under(workdir) if os.path.basename(p).startswith("escape-")]
    if allowed_inside:
        escaped = [p for p in escaped if not p.startswith(allowed_inside + "/")]
    assert escaped == []
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_mtime_ns, after.st_size) == \
        (passwd_before.st_nlink, passwd_before.st_mtime_ns, passwd_before.st_size)


@pytest.mark.parametrize("kind", REJECTED)
def test_hostile_layer_is_rejected_and_writes_nothing_outside(make_berthd, registry, pushed, workdir, kind):
    pushed(kind, f"library/{kind}:1")
    b = make_berthd(mirror_config(registry)).start()
    passwd = os.stat("/etc/passwd")
    with b.client() as c:
        with pytest.raises(grpc.RpcError) as e:
            c.pull(f"{kind}:1")
        assert e.value.code() != grpc.StatusCode.OK
        assert c.list() == []
    assert_nothing_outside(workdir, passwd)
    # Only the benign base layer (busybox) may remain as a committed snapshot; the
    # hostile layer's half-unpacked snapshot is gone.
    assert len(snapshot_dirs(b.root)) <= 1


def test_absolute_paths_stay_inside_the_snapshot(make_berthd, registry, pushed, workdir):
    """As containerd does, an absolute entry name is taken relative to the layer root."""
    pushed("hostile-absolute", "library/hostile-absolute:1")
    b = make_berthd(mirror_config(registry)).start()
    passwd = os.stat("/etc/passwd")
    with b.client() as c:
        try:
            c.pull("hostile-absolute:1")
        except grpc.RpcError:
            pass  # rejecting it is fine too; writing outside is not
    assert_nothing_outside(workdir, passwd, allowed_inside=os.path.join(b.root, "snapshots"))


def test_sigterm_during_pull_exits_and_the_next_start_is_clean(make_berthd, registry, pushed):
    img = pushed("big", "library/big-term:1")
    b = make_berthd("shutdown_timeout = 1\n" + mirror_config(registry)).start()
    with b.client() as c:
        fut = c.pull_future("big-term:1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not fut.done() and "msg=\"pulling image\"" not in b.log():
            time.sleep(0.01)
        # Either the pull finishes within the grace period or it is abandoned; both exit 0.
        assert b.stop(signal.SIGTERM, timeout=30) == 0
        try:
            fut.result()
        except grpc.RpcError:
            pass
    assert not os.path.exists(b.socket)
    b.start()
    with b.client() as c:
        assert c.pull("big-term:1") == img["image_id"]
    assert_store_consistent(b)


def test_pinned_images_follow_the_config(make_berthd, registry, pushed):
    bb = pushed("busybox", "library/busybox:latest")
    pushed("multilayer", "library/multi:1.0")
    b = make_berthd('[image]\npinned_images = ["busybox"]\n' + mirror_config(registry)).start()
    with b.client() as c:
        c.pull("busybox")
        c.pull("multi:1.0")
        assert c.status("busybox")[0].pinned
        assert not c.status("multi:1.0")[0].pinned
        assert {i.id: i.pinned for i in c.list()}[bb["image_id"]]
    b.stop()
    b.write_config(mirror_config(registry))  # no longer pinned: unpinned at the next start
    b.start()
    with b.client() as c:
        assert not c.status("busybox")[0].pinned
    assert "msg=\"image unpinned\"" in b.log()


def test_bad_pinned_reference_is_a_config_error(make_berthd):
    b = make_berthd('[image]\npinned_images = ["Bad::Ref"]\n')
    b.start(wait=False)
    assert b.proc.wait(timeout=30) != 0
    assert "image.pinned_images" in b.log()
