"""berthlet's command line as every Berth binary's: --version names the commit, a command
line it cannot run exits 2 (a failure exits 1), and the daemons' one log format (logfmt,
or JSON lines with the same keys)."""
import json
import re
import subprocess

import pytest

import agent_lib as L


def run_berthlet(*args):
    return subprocess.run([L.BERTHLET, *args], capture_output=True, text=True, timeout=30)


def test_version_names_the_commit():
    r = run_berthlet("--version")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()[:2]
    assert first.startswith("berthlet version "), r.stdout
    assert re.fullmatch(r"commit: [0-9a-f]{7,40}(-dirty)?", second), r.stdout


@pytest.mark.parametrize("args, says", [
    (["--no-such-flag"], "no-such-flag"),
    (["--read-only-port", "http"], "--read-only-port"),
    (["--file-check-frequency", "soon"], "soon"),
    (["--logging-format", "xml"], "--logging-format"),
    (["stray-argument"], "unexpected argument"),
])
def test_a_command_line_it_cannot_run_exits_2(args, says):
    r = run_berthlet(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert says in r.stderr, r.stderr


def test_a_failure_exits_1(tmp_path):
    r = run_berthlet("--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "missing.yaml" in r.stderr


def test_json_log_lines_carry_the_logfmt_keys(berthlet_factory):
    b = berthlet_factory("json-log")
    b.start("--logging-format", "json")
    L.wait_for(lambda: "berthlet ready" in b.logfile.read_text(), what="berthlet ready in the log")
    lines = b.logfile.read_text().splitlines()
    assert lines and all(l.startswith("{") for l in lines), lines[:5]
    records = [json.loads(l) for l in lines]
    assert all(list(r)[:3] == ["time", "level", "msg"] for r in records), records[:3]
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error"}
    assert any(r["msg"].startswith("berthlet ready") and r["level"] == "info" for r in records)
