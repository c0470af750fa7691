"""The registry configuration the ecosystem writes, against real registries: containerd's
certs.d hosts.toml (mirrors in order with capabilities and fallback, ca, client
certificates over mTLS, skip_verify, Docker's legacy certificate files), credentials from
podman's auth.json and docker credential helpers, and `berthd config default|dump`.
Cross-checks: containerd's own `ctr images pull --hosts-dir` reads the same hosts.toml,
and `podman login` writes the auth.json berthd reads (skipped only when the tool is
absent)."""
import os
import shutil
import socket
import subprocess
import time

import grpc
import pytest

import oci_image
from conftest import BERTHD, run_berthd
from containerd_config import private_config, daemon_env
from registry import Registry


@pytest.fixture(scope="module")
def origin():
    """A plain registry with one image; the other registries serve its storage."""
    with Registry() as reg:
        reg.image = oci_image.push(oci_image.build_image("busybox"), reg.addr, "library/rc:1")
        yield reg


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def berthd_with(make_berthd, certs_d="", auth_files=(), name="b", env=None):
    files = ", ".join(f'"{f}"' for f in auth_files)
    cfg = f'[image]\nregistry_config_path = "{certs_d or "/nonexistent"}"\nauth_files = [{files}]\n'
    return make_berthd(cfg, name=name, env=env).start()


def manifest_gets(reg):
    return [u for m, u, s in reg.requests() if m == "GET" and "/manifests/" in u and s == 200]


@pytest.fixture
def containerd(workdir):
    """A private containerd 1.6 (no CRI plugin) for `ctr images pull --hosts-dir`."""
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd or ctr not installed: the cross-check cannot run")
    root = os.path.join(workdir, "ctrd")
    os.makedirs(root)
    sock = os.path.join(root, "c.sock")
    cfg = os.path.join(root, "config.toml")
    write(cfg, private_config(root, sock, disabled_plugins=["io.containerd.grpc.v1.cri"]))
    log = open(os.path.join(root, "log"), "ab")
    proc = subprocess.Popen(["containerd", "--config", cfg], stdout=log, stderr=log, env=daemon_env(),
                            start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while subprocess.run(["ctr", "--address", sock, "version"], capture_output=True).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, "containerd did not start"
        time.sleep(0.1)

    def ctr_pull(ref, hosts_dir):
        return subprocess.run(["ctr", "--address", sock, "images", "pull", "--hosts-dir", hosts_dir, ref],
                              capture_output=True, text=True, timeout=120)
    yield ctr_pull
    proc.terminate()
    proc.wait(timeout=30)


def test_hosts_toml_mirrors_in_order_fall_back_and_containerd_agrees(make_berthd, origin, workdir, containerd):
    certs = os.path.join(workdir, "certs.d")
    with Registry(storage=origin.storage) as mirror:
        # A dead first mirror, then the working one; the server (Docker Hub, unreachable
        # here) is never asked.
        write(os.path.join(certs, "docker.io", "hosts.toml"), f'''server = "https://registry-1.docker.io"
[host."http://127.0.0.1:{dead_port()}"]
  capabilities = ["pull", "resolve"]
[host."{mirror.url}"]
  capabilities = ["pull", "resolve"]
''')
        b = berthd_with(make_berthd, certs)
        with b.client() as c:
            assert c.pull("docker.io/library/rc:1") == origin.image["image_id"]
            assert c.pull("rc:1") == origin.image["image_id"]
        assert manifest_gets(mirror), "the mirror served no manifest"
        assert not manifest_gets(origin)
        # containerd reads the same file and pulls the same image through the mirror
        served = len(manifest_gets(mirror))
        r = containerd("docker.io/library/rc:1", certs)
        assert r.returncode == 0, r.stderr
        assert len(manifest_gets(mirror)) > served, "containerd did not pull through the mirror"
        # Capabilities: a mirror without "resolve" is not asked for the tag.
        before = len(manifest_gets(mirror))
        write(os.path.join(certs, "docker.io", "hosts.toml"), f'''server = "http://127.0.0.1:{dead_port()}"
[host."{mirror.url}"]
  capabilities = ["pull"]
''')
        with b.client() as c:
            c.remove("docker.io/library/rc:1")
            with pytest.raises(grpc.RpcError) as e:
                c.pull("docker.io/library/rc:1")
        assert len(manifest_gets(mirror)) == before
        assert "127.0.0.1" in e.value.details()
        # ... but content by digest is pulled from it
        with b.client() as c:
            assert c.pull(f"docker.io/library/rc@{origin.image['manifest']}") == origin.image["image_id"]
        assert len(manifest_gets(mirror)) == before + 1


@pytest.fixture(scope="module")
def mtls(origin):
    with Registry(tls=True, client_auth=True, storage=origin.storage) as reg:
        yield reg


def test_tls_ca_and_client_certificate_from_hosts_toml(make_berthd, origin, mtls, workdir, containerd):
    certs = os.path.join(workdir, "certs.d")
    d = os.path.join(certs, mtls.addr)
    os.makedirs(d)
    shutil.copy(mtls.ca_file, os.path.join(d, "registry-ca.pem"))
    shutil.copy(mtls.client_cert, os.path.join(d, "me.pem"))
    shutil.copy(mtls.client_key, os.path.join(d, "me.key"))
    ref = f"{mtls.addr}/library/rc:1"
    # Without the client certificate the registry refuses the TLS handshake.
    write(os.path.join(d, "hosts.toml"), f'server = "https://{mtls.addr}"\nca = "registry-ca.pem"\n')
    b = berthd_with(make_berthd, certs)
    with b.client() as c:
        with pytest.raises(grpc.RpcError):
            c.pull(ref)
    # ca and client from the file (paths relative to its directory).
    write(os.path.join(d, "hosts.toml"), f'''server = "https://{mtls.addr}"
ca = "registry-ca.pem"
client = [["me.pem", "me.key"]]
''')
    with b.client() as c:
        assert c.pull(ref) == origin.image["image_id"]
        c.remove(ref)
    # The same in a [host] table, the form containerd 1.6 takes (it refuses a hosts.toml
    # without [host] tables: "invalid `host` tree"); containerd pulls with it too.
    write(os.path.join(d, "hosts.toml"), f'''server = "https://{mtls.addr}"
[host."https://{mtls.addr}"]
  capabilities = ["pull", "resolve"]
  ca = "registry-ca.pem"
  client = [["me.pem", "me.key"]]
''')
    with b.client() as c:
        assert c.pull(ref) == origin.image["image_id"]
        c.remove(ref)
    r = containerd(ref, certs)
    assert r.returncode == 0, r.stderr
    # skip_verify instead of the CA.
    write(os.path.join(d, "hosts.toml"), f'server = "https://{mtls.addr}"\nskip_verify = true\nclient = "both.pem"\n')
    with open(os.path.join(d, "both.pem"), "w") as f:  # one file with the certificate and its key
        f.write(open(mtls.client_cert).read() + open(mtls.client_key).read())
    with b.client() as c:
        assert c.pull(ref) == origin.image["image_id"]
        c.remove(ref)
    # Docker's certificate files instead of a hosts.toml (they mean https, even for loopback).
    os.remove(os.path.join(d, "hosts.toml"))
    os.rename(os.path.join(d, "registry-ca.pem"), os.path.join(d, "ca.crt"))
    os.rename(os.path.join(d, "me.pem"), os.path.join(d, "client.cert"))
    os.rename(os.path.join(d, "me.key"), os.path.join(d, "client.key"))
    with b.client() as c:
        assert c.pull(ref) == origin.image["image_id"]
        c.remove(ref)
    # (containerd 1.6 speaks http to a loopback host even with certificate files in its
    # directory, so it cannot check this form against this registry.)
    # With a hosts.toml in the directory the Docker files are not read (containerd's rule).
    write(os.path.join(d, "hosts.toml"), f'server = "https://{mtls.addr}"\n')
    with b.client() as c:
        with pytest.raises(grpc.RpcError):
            c.pull(ref)
    # berthd's own [registry] table for the host wins over certs.d.
    b.stop()
    os.remove(os.path.join(d, "hosts.toml"))
    b = make_berthd(f'[image]\nregistry_config_path = "{certs}"\nauth_files = []\n'
                    f'[registry."{mtls.addr}"]\nca_file = "{mtls.ca_file}"\n', name="table").start()
    with b.client() as c:
        with pytest.raises(grpc.RpcError):  # the table has no client certificate
            c.pull(ref)


def test_auth_json_from_podman_login_and_credential_helpers(make_berthd, workdir):
    with Registry(users={"alice": "s3cret"}) as reg:
        img = oci_image.push(oci_image.build_image("busybox"), reg.addr, "team/app:1", auth=("alice", "s3cret"))
        ref = f"{reg.addr}/team/app:1"
        authfile = os.path.join(workdir, "auth.json")
        if shutil.which("podman"):
            r = subprocess.run(["podman", "login", "--authfile", authfile, "--tls-verify=false", "-u", "alice",
                                "-p", "s3cret", reg.addr], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        else:
            pytest.skip("podman not installed: the auth.json it writes cannot be checked")
        b = berthd_with(make_berthd, auth_files=["/nonexistent/auth.json", authfile], name="podman")
        with b.client() as c:
            assert c.pull(ref) == img["image_id"]
            c.remove(ref)
        assert "s3cret" not in b.log()
        b.stop()
        # A credential helper on berthd's PATH (docker's protocol), named by credHelpers.
        bindir = os.path.join(workdir, "bin")
        write(os.path.join(bindir, "docker-credential-berthtest"),
              '#!/bin/sh\nread url\n[ "$url" = "' + reg.addr + '" ] || { echo "credentials not found"; exit 1; }\n'
              'echo \'{"Username":"alice","Secret":"s3cret"}\'\n', 0o755)
        write(os.path.join(bindir, "docker-credential-hang"), "#!/bin/sh\nexec sleep 60\n", 0o755)
        helpers = os.path.join(workdir, "helpers.json")
        write(helpers, '{"credHelpers": {"' + reg.addr + '": "berthtest"}}')
        store = os.path.join(workdir, "store.json")
        write(store, '{"auths": {"' + reg.addr + '": {}}, "credsStore": "berthtest"}')
        hang = os.path.join(workdir, "hang.json")
        write(hang, '{"credsStore": "hang"}')
        garbage = os.path.join(workdir, "garbage.json")
        write(garbage, '{"auths": ')
        env = {"PATH": bindir + ":" + os.environ["PATH"]}
        for name, files in (("helper", [helpers]), ("store", [store])):
            b = berthd_with(make_berthd, auth_files=files, name=name, env=env)
            with b.client() as c:
                assert c.pull(ref) == img["image_id"], name
                c.remove(ref)
            b.stop()
        b = make_berthd(f'[image]\nregistry_config_path = "/nonexistent"\nauth_files = ["{hang}"]\n'
                        'credential_helper_timeout = 1\n', name="hang", env=env).start()
        with b.client() as c:
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as e:
                c.pull(ref)
            assert time.monotonic() - t0 < 20
            assert "docker-credential-hang" in e.value.details() and "killed" in e.value.details()
            # the helper was killed and reaped: no process of it is left
            out = subprocess.run(["ps", "-o", "stat=,args=", "--ppid", str(b.proc.pid)], capture_output=True,
                                 text=True).stdout
            assert "docker-credential-hang" not in out and " Z" not in out, out
            # the CRI's AuthConfig still comes first
            assert c.pull(ref, username="alice", password="s3cret") == img["image_id"]
        b.stop()
        b = berthd_with(make_berthd, auth_files=[garbage], name="garbage")
        with b.client() as c:
            with pytest.raises(grpc.RpcError) as e:
                c.pull(ref)
        assert garbage in e.value.details()


def test_config_default_loads_and_dump_shows_the_effective_values(workdir):
    r = run_berthd(["config", "default"])
    assert r.returncode == 0, r.stderr
    for key in ("registry_config_path", "auth_files", "[image]", "[runtime.handlers.\"berth\"]", "[cni]"):
        assert key in r.stdout
    path = os.path.join(workdir, "default.toml")
    write(path, r.stdout)
    # the default file loads, and dumping it gives it back
    d = run_berthd(["config", "dump", "--config", path])
    assert d.returncode == 0, d.stderr
    assert d.stdout == r.stdout
    # a changed key and a flag show in the dump
    write(path, r.stdout.replace("retries = 3", "retries = 7"))
    d = run_berthd(["config", "dump", "--config", path, "--log-level", "debug"])
    assert "retries = 7" in d.stdout and 'level = "debug"' in d.stdout
    # and berthd starts with the default file (directories moved to the test's)
    b = subprocess.Popen([BERTHD, "--config", path, "--root", os.path.join(workdir, "root"),
                          "--state-dir", os.path.join(workdir, "st")], stderr=subprocess.PIPE, text=True)
    sock = os.path.join(workdir, "st", "berthd.sock")
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        assert b.poll() is None and time.monotonic() < deadline, b.stderr.read() if b.poll() is not None else "slow"
        time.sleep(0.05)
    b.terminate()
    assert b.wait(timeout=30) == 0
    bad = run_berthd(["config", "frobnicate"])
    assert bad.returncode != 0 and "default" in bad.stderr
