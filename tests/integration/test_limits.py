"""Limits the host cannot enforce: `create` fails naming the controller and the host's
cgroup mode, unless the caller accepted running without them (--allow-unenforced-limits
or BERTH_ALLOW_UNENFORCED_LIMITS=1). Berth enforces limits through cgroup v2 only, so on
a hybrid host (cgroup v2 at /sys/fs/cgroup/unified without resource controllers) every
limit is unenforceable; on a pure cgroup v2 host with the controllers (tests/vm) the
tests that need a missing controller skip, and test_cgroups.py proves enforcement."""
import os
from pathlib import Path

import pytest

import helpers as H
from helpers import assert_fail, assert_ok, set_args, update_config

pytestmark = pytest.mark.berth_only  # runc enforces through cgroup v1 here

# One limit per controller, as linux.resources writes it.
LIMITS = {
    "memory": {"memory": {"limit": 64 << 20}},
    "pids": {"pids": {"limit": 100}},
    "cpu": {"cpu": {"shares": 512}},
}


def cgroup2_root() -> Path | None:
    for mp in H.cgroup_mounts():
        if next((m[2] for m in H.mountinfo() if m[0] == mp), None) == "cgroup2":
            return Path(mp)
    return None


def missing_controller() -> str:
    """A controller of LIMITS that this host's cgroup v2 hierarchy does not offer, or skip."""
    root = cgroup2_root()
    offered = set((root / "cgroup.controllers").read_text().split()) if root else set()
    for c in LIMITS:
        if c not in offered:
            return c
    pytest.skip(f"this host's cgroup v2 hierarchy offers every controller ({' '.join(sorted(offered))})")


@pytest.fixture
def limited(bundle):
    controller = missing_controller()
    update_config(bundle, lambda c: c["linux"]["resources"].update(LIMITS[controller]))
    set_args(bundle, "sh", "-c", "echo ran")
    return bundle, controller


@pytest.mark.parametrize("how", ["create", "run"])
def test_unenforceable_limit_fails(env, limited, how):
    bundle, controller = limited
    res = env.create(bundle) if how == "create" else env.run(bundle)
    assert_fail(res, "cannot enforce", f"{controller} (linux.resources.{controller}.", "cgroup mode is",
                "--allow-unenforced-limits", "BERTH_ALLOW_UNENFORCED_LIMITS=1")
    mode = "hybrid" if str(cgroup2_root()).endswith("/unified") else "unified" if cgroup2_root() else "legacy"
    assert f"cgroup mode is {mode}" in res.err, res
    env.assert_no_trace(res.cid, bundle)


def test_unenforceable_limit_runs_with_the_flag(env, limited):
    bundle, controller = limited
    res = assert_ok(env.run(bundle, global_args=["--allow-unenforced-limits"]))
    assert res.out.strip() == "ran", res
    assert f"linux.resources.{controller}." in res.err and "not applied" in res.err, res
    env.assert_no_trace(res.cid, bundle)


@pytest.mark.parametrize("value,accepted", [("1", True), ("true", True), ("0", False), ("", False)])
def test_unenforceable_limit_and_the_environment(env, limited, value, accepted):
    bundle, controller = limited
    res = env.run(bundle, env={**os.environ, "BERTH_ALLOW_UNENFORCED_LIMITS": value})
    if accepted:
        assert res.rc == 0 and res.out.strip() == "ran", res
        assert "not applied" in res.err, res
    else:
        assert_fail(res, "cannot enforce")
    env.assert_no_trace(res.cid, bundle)


def test_no_limits_need_no_opt_in(env, bundle):
    """The default config sets only device rules (a BPF program, no controller)."""
    set_args(bundle, "true")
    assert_ok(env.run(bundle))
