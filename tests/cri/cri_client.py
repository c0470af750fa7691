"""A small CRI v1 client over gRPC, shared by tests/cri and bench/cri-pull.py.

The Python stubs are generated from cri/proto/api.proto at run time into a temp
directory (protoc + grpc_python_plugin), so nothing generated is ever committed:

    client = CriClient("/run/berthd/berthd.sock")
    client.version().runtime_name          # "berth" (or "containerd")
    image_ref = client.pull("busybox")      # returns PullImageResponse.image_ref
    client.list(), client.status("busybox", verbose=True), client.remove("busybox")

Needs Debian's python3-grpcio and python3-protobuf (run with /usr/bin/python3).
"""

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_DIR = os.path.join(REPO, "cri", "proto")
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"

_stubs = None


def load_stubs(outdir=None):
    """(api_pb2, api_pb2_grpc), generated once per process from cri/proto/api.proto."""
    global _stubs
    if _stubs is not None:
        return _stubs
    if outdir is None:
        outdir = tempfile.mkdtemp(prefix="berth-cri-stubs-")
        atexit.register(shutil.rmtree, outdir, True)
    subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", f"--python_out={outdir}",
                    f"--grpc_out={outdir}", f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}",
                    os.path.join(PROTO_DIR, "api.proto")], check=True)
    sys.path.insert(0, outdir)
    pb2 = importlib.import_module("api_pb2")
    pb2_grpc = importlib.import_module("api_pb2_grpc")
    _stubs = (pb2, pb2_grpc)
    return _stubs


class CriClient:
    def __init__(self, socket_path, timeout=300):
        self.pb2, pb2_grpc = load_stubs()
        self.socket_path = socket_path
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            "unix://" + os.path.abspath(socket_path),
            options=[("grpc.max_receive_message_length", 16 << 20)])
        self.runtime = pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = pb2_grpc.ImageServiceStub(self.channel)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self, ref):
        return self.pb2.ImageSpec(image=ref)

    def version(self, timeout=None):
        return self.runtime.Version(self.pb2.VersionRequest(version="v1"),
                                    timeout=timeout or self.timeout)

    def pull(self, ref, username=None, password=None, auth=None, sandbox=None, timeout=None):
        req = self.pb2.PullImageRequest(image=self._spec(ref))
        if username is not None or auth is not None:
            req.auth.CopyFrom(self.pb2.AuthConfig(username=username or "", password=password or "",
                                                  auth=auth or ""))
        if sandbox is not None:
            req.sandbox_config.CopyFrom(sandbox)
        return self.images.PullImage(req, timeout=timeout or self.timeout).image_ref

    def pull_future(self, ref, timeout=None):
        """Starts a pull; .result() waits for it (for concurrent and interrupted pulls)."""
        req = self.pb2.PullImageRequest(image=self._spec(ref))
        return self.images.PullImage.future(req, timeout=timeout or self.timeout)

    def list(self, ref=None):
        req = self.pb2.ListImagesRequest()
        if ref:
            req.filter.image.image = ref
        return list(self.images.ListImages(req, timeout=self.timeout).images)

    def status(self, ref, verbose=False):
        """(Image or None, info dict)."""
        resp = self.images.ImageStatus(self.pb2.ImageStatusRequest(image=self._spec(ref), verbose=verbose),
                                       timeout=self.timeout)
        return (resp.image if resp.HasField("image") else None), dict(resp.info)

    def remove(self, ref):
        self.images.RemoveImage(self.pb2.RemoveImageRequest(image=self._spec(ref)), timeout=self.timeout)

    def fsinfo(self):
        return self.images.ImageFsInfo(self.pb2.ImageFsInfoRequest(), timeout=self.timeout)
