"""berthd's foundation: CRI Version, UNIMPLEMENTED calls, config and flags, socket,
sd_notify, single instance, SIGTERM shutdown."""

import json
import os
import re
import signal
import stat
import time

import grpc
import pytest

from conftest import run_berthd


def test_version(make_berthd):
    b = make_berthd().start()
    with b.client() as c:
        v = c.version()
    assert v.runtime_name == "berth"
    assert v.runtime_api_version == "v1"
    assert v.version == "0.1.0"
    assert v.runtime_version.count(".") == 2


@pytest.mark.parametrize("call", ["Exec", "Attach", "PortForward"])
def test_streaming_calls_check_their_request_without_a_container(make_berthd, pb2, call):
    b = make_berthd().start()
    with b.client() as c:
        request = {"Exec": pb2.ExecRequest(cmd=["true"], stdout=True), "Attach": pb2.AttachRequest(stdout=True),
                   "PortForward": pb2.PortForwardRequest()}[call]
        with pytest.raises(grpc.RpcError) as e:
            getattr(c.runtime, call)(request, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing required" in e.value.details()
    # Refused before the stream server starts: nothing loaded for it.
    assert "libmicrohttpd" not in open(f"/proc/{b.proc.pid}/maps").read()


def test_checkpoint_is_unimplemented_naming_criu(make_berthd, pb2):
    b = make_berthd().start()
    with b.client() as c:
        with pytest.raises(grpc.RpcError) as e:
            c.runtime.CheckpointContainer(pb2.CheckpointContainerRequest(container_id="x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CRIU" in e.value.details()


def test_runtime_config_and_status(make_berthd, pb2):
    b = make_berthd("[runtime]\ncgroup_driver = \"systemd\"\n").start()
    with b.client() as c:
        assert c.runtime.RuntimeConfig(pb2.RuntimeConfigRequest(), timeout=10).linux.cgroup_driver == pb2.SYSTEMD
        st = c.runtime.Status(pb2.StatusRequest(verbose=True), timeout=10)
        conds = {x.type: x.status for x in st.status.conditions}
        assert conds["RuntimeReady"] is True and "NetworkReady" in conds
        assert json.loads(st.info["config"])["cgroupDriver"] == "systemd"
        assert "berth" in {h.name for h in st.runtime_handlers}
        c.runtime.UpdateRuntimeConfig(pb2.UpdateRuntimeConfigRequest(
            runtime_config=pb2.RuntimeConfig(network_config=pb2.NetworkConfig(pod_cidr="10.244.1.0/24"))), timeout=10)
        st = c.runtime.Status(pb2.StatusRequest(verbose=True), timeout=10)
        assert json.loads(st.info["config"])["podCIDR"] == "10.244.1.0/24"


def test_event_stream_ends_when_berthd_stops(make_berthd, pb2):
    b = make_berthd().start()
    c = b.client()
    stream = c.runtime.GetContainerEvents(pb2.GetEventsRequest(), timeout=60)
    import threading
    ended = threading.Event()

    def read():
        try:
            for _ in stream:
                pass
        except grpc.RpcError:
            pass
        ended.set()
    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.5)
    t = time.monotonic()
    assert b.stop() == 0
    assert time.monotonic() - t < 5, "an open event stream held up shutdown"
    assert ended.wait(5)
    c.close()


def test_socket_mode_and_log_format(make_berthd):
    b = make_berthd().start()
    st = os.stat(b.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    serving = [l for l in b.log().splitlines() if 'msg=serving' in l]
    assert serving and "level=info" in serving[0] and f"socket={b.socket}" in serving[0]


def test_socket_mode_and_json_log_from_config(make_berthd):
    b = make_berthd('[grpc]\nsocket_mode = "0600"\n[log]\nformat = "json"\n', args=["--log-level", "info"])
    b.start()
    assert stat.S_IMODE(os.stat(b.socket).st_mode) == 0o600
    lines = [json.loads(l) for l in b.log().splitlines() if l.startswith("{")]
    serving = [l for l in lines if l["msg"] == "serving"]
    assert serving and serving[0]["level"] == "info" and serving[0]["socket"] == b.socket
    assert all(l["level"] != "debug" for l in lines)


def test_flags_override_the_config_file(make_berthd, workdir):
    other_state = os.path.join(workdir, "flag-state")
    b = make_berthd(args=["--state-dir", other_state])
    b.socket = os.path.join(other_state, "berthd.sock")
    b.start()
    assert os.path.exists(b.socket)
    assert not os.path.exists(os.path.join(b.state, "berthd.sock"))


def test_address_from_config(make_berthd, workdir):
    sock = os.path.join(workdir, "elsewhere", "cri.sock")
    b = make_berthd(f'[grpc]\naddress = "{sock}"\n')
    b.socket = sock
    b.start()
    with b.client() as c:
        assert c.version().runtime_name == "berth"


def test_sd_notify_ready_and_stopping(make_berthd, notify_socket):
    path, receive = notify_socket
    b = make_berthd(env={"NOTIFY_SOCKET": path}).start(wait=False)
    ready = receive()
    assert "READY=1" in ready.splitlines()
    # READY is sent only once the socket serves.
    with b.client() as c:
        assert c.version(timeout=5).runtime_name == "berth"
    assert b.stop(signal.SIGTERM) == 0
    assert "STOPPING=1" in receive().splitlines()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_and_removes_the_socket(make_berthd, sig):
    b = make_berthd().start()
    assert os.path.exists(b.socket)
    assert b.stop(sig) == 0
    assert not os.path.exists(b.socket)
    assert "msg=stopped" in b.log()


def test_second_instance_on_the_same_state_dir_is_refused(make_berthd):
    b = make_berthd().start()
    r = run_berthd(["--config", b.config_path])
    assert r.returncode != 0
    assert "another berthd is running" in r.stderr
    with b.client() as c:  # the first one still serves on its socket
        assert c.version().runtime_name == "berth"


def test_stale_socket_from_a_killed_daemon_is_replaced(make_berthd):
    b = make_berthd().start()
    b.kill9()
    assert os.path.exists(b.socket)
    b.start()
    with b.client() as c:
        assert c.version().runtime_name == "berth"


def _config_error(workdir, text, *extra):
    path = os.path.join(workdir, "bad.toml")
    with open(path, "w") as f:
        f.write(text)
    r = run_berthd(["--config", path, "--root", os.path.join(workdir, "r"),
                    "--state-dir", os.path.join(workdir, "s")] + list(extra))
    assert r.returncode != 0, r.stderr
    assert not os.path.exists(os.path.join(workdir, "s", "berthd.sock"))
    assert "level=error" in r.stderr
    return path, r.stderr.replace('\\"', '"')  # the logfmt value quotes the error text


def test_bad_toml_is_a_clear_error(workdir):
    path, err = _config_error(workdir, 'root = "/x"\n[grpc\naddress = 1\n')
    assert f"{path}:2" in err and "invalid TOML" in err


def test_unknown_key_is_a_clear_error(workdir):
    path, err = _config_error(workdir, '[grpc]\nadress = "/tmp/x.sock"\n')
    assert f"{path}:2: grpc.adress: unknown key" in err


def test_unknown_top_level_table_is_a_clear_error(workdir):
    path, err = _config_error(workdir, '[plugins]\nx = 1\n')
    assert "plugins: unknown key" in err


def test_wrong_type_is_a_clear_error(workdir):
    path, err = _config_error(workdir, '[image]\nmax_concurrent_downloads = "three"\n')
    assert "image.max_concurrent_downloads: expected an integer" in err


def test_bad_values_are_clear_errors(workdir):
    _, err = _config_error(workdir, '[log]\nlevel = "loud"\n')
    assert "log.level" in err and "loud" in err
    _, err = _config_error(workdir, '[registry."docker.io"]\nmirrors = ["127.0.0.1:5000"]\n')
    assert 'registry."docker.io".mirrors' in err and "http://" in err
    _, err = _config_error(workdir, '[registry."docker.io"]\nmirror = ["http://127.0.0.1:5000"]\n')
    assert 'registry."docker.io".mirror: unknown key' in err
    _, err = _config_error(workdir, '[grpc]\nsocket_mode = "0999"\n')
    assert "grpc.socket_mode" in err


def test_missing_explicit_config_and_bad_flags(workdir):
    r = run_berthd(["--config", os.path.join(workdir, "nope.toml")])
    assert r.returncode == 1 and "nope.toml: no such file" in r.stderr
    # A command line berthd cannot run: exit 2, as every Berth binary.
    r = run_berthd(["--no-such-flag"])
    assert r.returncode == 2 and "unknown flag --no-such-flag" in r.stderr
    r = run_berthd(["--log-level", "chatty"])
    assert r.returncode == 2 and "--log-level" in r.stderr


def test_help_and_version():
    r = run_berthd(["--help"])
    assert r.returncode == 0 and "--config" in r.stdout and "--state-dir" in r.stdout
    r = run_berthd(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("berthd version ")
    # The commit it was built from (scripts/git-commit.sh): a hex id, maybe -dirty.
    commit = r.stdout.splitlines()[1]
    assert re.fullmatch(r"commit: [0-9a-f]{7,40}(-dirty)?", commit), r.stdout


def test_socket_path_too_long_is_a_clear_error(workdir):
    long_sock = os.path.join(workdir, "x" * 100, "berthd.sock")
    r = run_berthd(["--root", os.path.join(workdir, "r"), "--state-dir", os.path.join(workdir, "s"),
                    "--address", long_sock])
    assert r.returncode != 0
    assert "unix sockets allow at most 107" in r.stderr


def test_runtime_settings_are_checked(workdir):
    _, err = _config_error(workdir, '[runtime]\ncgroup_driver = "cgroupv3"\n')
    assert "runtime.cgroup_driver" in err and "cgroupv3" in err
    _, err = _config_error(workdir, '[runtime]\ndefault_handler = "crun"\n')
    assert "runtime.default_handler" in err and "crun" in err
    _, err = _config_error(workdir, '[runtime.handlers.runc]\nbinary = "runc"\nroot = "relative"\n')
    assert 'runtime.handlers."runc".root' in err
    _, err = _config_error(workdir, '[runtime.handlers.x]\nbinary = "/no/such/runtime"\n')
    assert "/no/such/runtime" in err
    _, err = _config_error(workdir, '[cni]\nconf_dirs = "/etc/cni"\n')
    assert "cni.conf_dirs: unknown key" in err


def test_notify_socket_and_watchdog_stay_berthds(make_world, notify_socket):
    """Under systemd (Type=notify, WatchdogSec=) berthd pings the watchdog, and neither its
    shims nor the OCI runtime nor the containers inherit NOTIFY_SOCKET: a runtime that saw
    it would wait for the container's READY=1 (runc's sd-notify relay) and StartContainer
    would hang."""
    path, receive = notify_socket
    w = make_world(start=False)
    w.berthd.env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    w.up()
    messages = [receive(10) for _ in range(3)]
    assert any("READY=1" in m for m in messages), messages
    assert "WATCHDOG=1" in receive(5).splitlines()  # every WATCHDOG_USEC/2
    w.client.pull("busybox")
    pod_id, cfg = w.run_pod()
    t0 = time.monotonic()
    cid = w.run(pod_id, cfg, command=["sleep", "1000"])
    assert time.monotonic() - t0 < 20
    pid = json.loads(w.status(cid, verbose=True).info["info"])["pid"]
    shims = [int(p) for p in os.listdir("/proc") if p.isdigit() and cid.encode() in _cmdline(p)]
    assert shims, "no berth-shim for the container"
    for p in [pid] + shims:
        environ = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
        assert not [e for e in environ if e.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))], p


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""
