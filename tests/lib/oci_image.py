#!/usr/bin/python3
"""Test images built from busybox-static without docker, and a small registry pusher.

Kinds (build_image(kind, ...) / --kind):
  busybox      one layer: /bin/busybox, applet links, /etc/passwd, /etc/group, /tmp
  busybox-all  the same with a link for every applet the host's busybox-static has
  multilayer   busybox + a layer with /etc/berth-release + a layer with /usr/share/berth/*
  whiteout     layer 1: /data/{a,b,c}, /opq/{x,y}, /gone/f; layer 2: /data/.wh.a,
               /.wh.gone, /opq/.wh..wh..opq + /opq/z
  index        an OCI index: linux/amd64 (busybox) + linux/arm64/v8 (a dummy layer)
  big          busybox + 4 layers of 25 MiB random data (~100 MB compressed)
  hostile-traversal  entry "../../escape-traversal"
  hostile-absolute   entry "/escape-absolute" (absolute path)
  hostile-symlink    "evil" -> "/tmp/..." (or "../../..") then "evil/escape-symlink"
  hostile-hardlink   hardlink "link" -> "../../../etc/shadow-like" target outside
  hostile-devices    char device 1:1, block device 7:0, fifo, a setuid file
  Compression: gzip (default), zstd, none. Format: oci (default) or docker (schema2).

Library:
    img = build_image("whiteout", compression="zstd")   # -> Image (blobs in memory)
    img.write_layout("/tmp/layout", tag="latest")        # OCI image layout on disk
    push(img, "127.0.0.1:5000", "library/busybox:latest", auth=("u", "p"))

CLI:
    python3 tests/lib/oci_image.py push --registry 127.0.0.1:5000 \\
        --name library/busybox:latest --kind busybox [--compression zstd] [--format docker] \\
        [--user u:p] [--layout DIR]      (--registry https://127.0.0.1:5000 --ca-file F for TLS)
    python3 tests/lib/oci_image.py layout --kind multilayer --out DIR [--tag latest]

`push` prints {"manifest": digest, "index": digest|null, "config": digest, "layers": [...],
"diff_ids": [...], "image_id": "sha256:...", "size": n} (+ "platforms" for an index) as
JSON. Pushing is done by this module over HTTP (monolithic blob upload + manifest PUT);
`layout` + `skopeo copy --dest-tls-verify=false oci:DIR:TAG docker://HOST/REPO:TAG` works
too: skopeo 1.9.3 copies every kind byte for byte, hostile ones included (checked).
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import re
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "env", "mkdir", "rm",
           "touch", "test", "stat", "readlink", "sync", "head", "wc"]
MTIME = 1700000000

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
             "none": "application/vnd.oci.image.layer.v1.tar"}
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = {"gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "none": "application/vnd.docker.image.rootfs.diff.tar"}


def host_arch():
    import platform
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Tar:
    """An uncompressed tar stream built entry by entry (deterministic)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.mtime = MTIME
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name, data, mode=0o644, pax=None):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode)
        ti.size = len(data)
        if pax:
            ti.pax_headers = dict(pax)
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self.tar.addfile(ti)

    def device(self, name, kind, major, minor, mode=0o666):
        ti = self._info(name, kind, mode)
        ti.devmajor, ti.devminor = major, minor
        self.tar.addfile(ti)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def compress(raw, compression):
    if compression == "gzip":
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-3", "-c"], input=raw, check=True,
                              capture_output=True).stdout
    if compression == "none":
        return raw
    raise ValueError(f"unknown compression {compression!r}")


class Layer:
    def __init__(self, raw_tar, compression):
        self.diff_id = sha256(raw_tar)
        self.blob = compress(raw_tar, compression)
        self.digest = sha256(self.blob)
        self.compression = compression


class Image:
    """One platform image (manifest + config + layers), or an index over several."""

    def __init__(self, layers=None, arch="amd64", variant=None, fmt="oci", cmd=None, user=None,
                 children=None):
        self.fmt = fmt
        self.children = children  # list of Image for an index
        self.blobs = {}           # digest -> bytes (layers + configs + child manifests)
        if children:
            manifests = []
            for child in children:
                self.blobs.update(child.blobs)
                self.blobs[child.manifest_digest] = child.manifest
                plat = {"architecture": child.arch, "os": "linux"}
                if child.variant:
                    plat["variant"] = child.variant
                manifests.append({"mediaType": child.media_type, "digest": child.manifest_digest,
                                  "size": len(child.manifest), "platform": plat})
            self.media_type = OCI_INDEX if fmt == "oci" else DOCKER_LIST
            self.manifest = json.dumps({"schemaVersion": 2, "mediaType": self.media_type,
                                        "manifests": manifests}, indent=None).encode()
            self.manifest_digest = sha256(self.manifest)
            # The summary describes the child a puller on this machine selects.
            self.default = next((c for c in children if c.arch == host_arch()), children[0])
            self.config_digest, self.layers = self.default.config_digest, self.default.layers
            return
        self.arch, self.variant, self.layers = arch, variant, layers
        config = {
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": cmd or ["sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "berth tests/lib/oci_image.py"}
                        for _ in layers],
            "created": "2023-11-14T22:13:20Z",
        }
        if variant:
            config["variant"] = variant
        if user:
            config["config"]["User"] = user
        self.config = json.dumps(config, sort_keys=True).encode()
        self.config_digest = sha256(self.config)
        for l in layers:
            self.blobs[l.digest] = l.blob
        self.blobs[self.config_digest] = self.config
        if fmt == "oci":
            self.media_type = OCI_MANIFEST
            layer_types = OCI_LAYER
            config_type = OCI_CONFIG
        else:
            self.media_type = DOCKER_MANIFEST
            layer_types = DOCKER_LAYER
            config_type = DOCKER_CONFIG
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": self.media_type,
            "config": {"mediaType": config_type, "digest": self.config_digest, "size": len(self.config)},
            "layers": [{"mediaType": layer_types[l.compression], "digest": l.digest, "size": len(l.blob)}
                       for l in layers],
        }).encode()
        self.manifest_digest = sha256(self.manifest)

    @property
    def image_id(self):
        return self.config_digest

    def summary(self):
        """manifest/config/image_id/layers: of the host platform's child for an index;
        "platforms" maps "os/arch[/variant]" to each child's manifest digest."""
        out = {"manifest": self.default.manifest_digest if self.children else self.manifest_digest,
               "index": self.manifest_digest if self.children else None,
                "config": self.config_digest, "image_id": self.config_digest,
                "layers": [l.digest for l in self.layers],
                "diff_ids": [l.diff_id for l in self.layers],
                "size": sum(len(b) for b in self.blobs.values()) + len(self.manifest)}
        if self.children:
            out["platforms"] = {"linux/" + c.arch + ("/" + c.variant if c.variant else ""): c.manifest_digest
                                for c in self.children}
        return out

    def write_layout(self, out, tag="latest"):
        """Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...)."""
        os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
        blobs = dict(self.blobs)
        blobs[self.manifest_digest] = self.manifest
        for digest, data in blobs.items():
            with open(os.path.join(out, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
                f.write(data)
        with open(os.path.join(out, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        with open(os.path.join(out, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{
                "mediaType": self.media_type, "digest": self.manifest_digest, "size": len(self.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)


def busybox_tar(extra=None):
    t = Tar()
    for d in ["bin", "etc", "tmp", "root", "usr", "usr/bin", "proc", "sys", "dev"]:
        t.dir(d, 0o1777 if d == "tmp" else 0o755)
    with open(BUSYBOX, "rb") as f:
        t.file("bin/busybox", f.read(), 0o755)
    for a in APPLETS:
        t.symlink(f"bin/{a}", "busybox")
    t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    t.file("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    if extra:
        extra(t)
    return t.bytes()


def _every_applet(t):
    """Links for every applet of the host's busybox-static (pods run top, nc, ps, ...)."""
    listed = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in listed:
        if a not in APPLETS and a != "busybox":
            t.symlink(f"bin/{a}", "busybox")


def _layer(builder, compression):
    t = Tar()
    builder(t)
    return Layer(t.bytes(), compression)


def build_image(kind, compression="gzip", fmt="oci"):
    if fmt == "docker" and compression == "zstd":
        raise ValueError("docker schema2 has no zstd layer media type")
    base = Layer(busybox_tar(), compression)
    if kind == "busybox":
        return Image([base], fmt=fmt)
    if kind == "busybox-all":
        return Image([Layer(busybox_tar(_every_applet), compression)], fmt=fmt)
    if kind == "multilayer":
        def l2(t):
            t.file("etc/berth-release", "berth test image\n")

        def l3(t):
            t.dir("usr/share")
            t.dir("usr/share/berth")
            for i in range(5):
                t.file(f"usr/share/berth/file{i}", f"content {i}\n" * 100)
            t.symlink("usr/bin/berth-sh", "/bin/busybox")
        return Image([base, _layer(l2, compression), _layer(l3, compression)], fmt=fmt,
                     cmd=["cat", "/etc/berth-release"])
    if kind == "whiteout":
        def l1(t):
            t.dir("data")
            for n in "abc":
                t.file(f"data/{n}", f"{n}\n")
            t.dir("opq")
            t.file("opq/x", "x\n")
            t.file("opq/y", "y\n")
            t.dir("gone")
            t.file("gone/f", "f\n")

        def l2(t):
            t.file("data/.wh.a", "")
            t.file(".wh.gone", "")
            t.dir("opq")
            t.file("opq/.wh..wh..opq", "")
            t.file("opq/z", "z\n")
        return Image([base, _layer(l1, compression), _layer(l2, compression)], fmt=fmt)
    if kind == "index":
        amd64 = Image([base], arch="amd64", fmt=fmt)

        def dummy(t):
            t.file("arm64-only", "this layer is for linux/arm64/v8\n")
        arm64 = Image([_layer(dummy, compression)], arch="arm64", variant="v8", fmt=fmt)
        return Image(children=[arm64, amd64], fmt=fmt)
    if kind == "big":
        layers = [base]
        for i in range(4):
            def rnd(t, i=i):
                t.dir(f"data{i}")
                # Random data does not compress: 25 MiB per layer on the wire.
                for j in range(5):
                    t.file(f"data{i}/blob{j}", os.urandom(5 << 20))
            layers.append(_layer(rnd, compression))
        return Image(layers, fmt=fmt)
    if kind.startswith("hostile-"):
        return Image([base, _layer(HOSTILE[kind], compression)], fmt=fmt)
    raise ValueError(f"unknown image kind {kind!r}")


def _hostile_traversal(t):
    t.file("../../escape-traversal", "written by a hostile layer\n")


def _hostile_absolute(t):
    t.file("/escape-absolute", "written by a hostile layer\n")


def _hostile_symlink(t):
    t.symlink("evil", "../../../../../../../../tmp")
    t.file("evil/escape-symlink", "written through a symlink\n")
    t.symlink("evil-abs", "/tmp")
    t.file("evil-abs/escape-symlink-abs", "written through an absolute symlink\n")


def _hostile_hardlink(t):
    t.hardlink("link-out", "../../../../../../../../etc/passwd")
    t.hardlink("link-abs", "/etc/passwd")


def _hostile_devices(t):
    t.dir("dev")
    t.device("dev/null-copy", tarfile.CHRTYPE, 1, 3)
    t.device("dev/loop-copy", tarfile.BLKTYPE, 7, 0)
    t.device("dev/fifo", tarfile.FIFOTYPE, 0, 0)
    t.file("bin/suid-file", "#!/bin/sh\n", 0o4755)


HOSTILE = {"hostile-traversal": _hostile_traversal, "hostile-absolute": _hostile_absolute,
           "hostile-symlink": _hostile_symlink, "hostile-hardlink": _hostile_hardlink,
           "hostile-devices": _hostile_devices}
KINDS = ["busybox", "multilayer", "whiteout", "index", "big"] + sorted(HOSTILE)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


class Pusher:
    """Distribution API pushes: monolithic blob uploads, then the manifest(s)."""

    def __init__(self, registry, auth=None, ca_file=None):
        # "host:port" is plain HTTP; "https://host:port" is TLS, verified against ca_file.
        self.base = registry if "://" in registry else f"http://{registry}"
        self.auth = auth
        self.token = None
        self.ssl = None
        if self.base.startswith("https://"):
            import ssl
            self.ssl = ssl.create_default_context(cafile=ca_file)

    def _request(self, method, url, data=None, headers=None, retry=True):
        if url.startswith("/"):
            url = self.base + url
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        elif self.auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(
                f"{self.auth[0]}:{self.auth[1]}".encode()).decode())
        try:
            return urllib.request.urlopen(req, timeout=120, context=self.ssl)
        except urllib.error.HTTPError as e:
            challenge = e.headers.get("WWW-Authenticate", "")
            if e.code == 401 and retry and challenge.startswith("Bearer "):
                self._fetch_token(challenge)
                return self._request(method, url, data, headers, retry=False)
            raise RuntimeError(f"{method} {url}: HTTP {e.code}: {e.read()[:500]!r}") from None

    def _fetch_token(self, challenge):
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        q = {"service": params.get("service", "")}
        if "scope" in params:
            q["scope"] = params["scope"]
        req = urllib.request.Request(params["realm"] + "?" + urllib.parse.urlencode(q))
        if self.auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(
                f"{self.auth[0]}:{self.auth[1]}".encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.load(r)
        self.token = body.get("token") or body.get("access_token")

    def blob(self, repo, digest, data):
        try:
            self._request("HEAD", f"/v2/{repo}/blobs/{digest}").close()
            return
        except RuntimeError:
            pass
        with self._request("POST", f"/v2/{repo}/blobs/uploads/") as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        self._request("PUT", location + sep + "digest=" + urllib.parse.quote(digest), data=data,
                      headers={"Content-Type": "application/octet-stream"}).close()

    def manifest(self, repo, ref, media_type, data):
        self._request("PUT", f"/v2/{repo}/manifests/{ref}", data=data,
                      headers={"Content-Type": media_type}).close()


def split_name(name):
    repo, _, tag = name.rpartition(":")
    if not repo or "/" in tag:
        return name, "latest"
    return repo, tag


def push(image, registry, name, auth=None, ca_file=None):
    """Pushes `image` as <registry>/<name> ("repo:tag"); returns image.summary().
    `registry` is "host:port" (HTTP) or "https://host:port" (TLS, checked with ca_file)."""
    repo, tag = split_name(name)
    p = Pusher(registry, auth, ca_file)
    for digest, data in image.blobs.items():
        if image.children and any(digest == c.manifest_digest for c in image.children):
            continue
        p.blob(repo, digest, data)
    if image.children:
        for c in image.children:
            p.manifest(repo, c.manifest_digest, c.media_type, c.manifest)
    p.manifest(repo, tag, image.media_type, image.manifest)
    return image.summary()


def _cli():
    ap = argparse.ArgumentParser(description="Build busybox-based test images; push them.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("push", "layout"):
        sp = sub.add_parser(cmd)
        sp.add_argument("--kind", default="busybox", choices=KINDS)
        sp.add_argument("--compression", default="gzip", choices=["gzip", "zstd", "none"])
        sp.add_argument("--format", default="oci", choices=["oci", "docker"])
        if cmd == "push":
            sp.add_argument("--registry", required=True)
            sp.add_argument("--name", required=True)
            sp.add_argument("--user", help="user:password")
            sp.add_argument("--ca-file", help="CA for an https:// registry")
            sp.add_argument("--layout", help="also write an OCI layout here")
        else:
            sp.add_argument("--out", required=True)
            sp.add_argument("--tag", default="latest")
    args = ap.parse_args()
    img = build_image(args.kind, args.compression, args.format)
    if args.cmd == "layout":
        img.write_layout(args.out, args.tag)
        print(json.dumps(img.summary()))
        return 0
    if args.layout:
        img.write_layout(args.layout, split_name(args.name)[1])
    auth = tuple(args.user.split(":", 1)) if args.user else None
    print(json.dumps(push(img, args.registry, args.name, auth, args.ca_file)))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
