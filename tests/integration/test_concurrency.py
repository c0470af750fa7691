"""Concurrent runtime invocations on one container and on many."""
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import helpers as H
from helpers import assert_ok, set_args

EXPECTED_KILL_ERRORS = ("container not running", "container does not exist")
EXPECTED_STATE_ERRORS = ("container does not exist",)


def spawn_many(env, calls):
    """Start every call at once (separate processes), then wait for all."""
    procs = []
    for i, args in enumerate(calls):
        out = open(env.path(f"par{i}.out"), "wb+")
        err = open(env.path(f"par{i}.err"), "wb+")
        cmd = [H.RUNTIME, "--root", env.root] + [str(a) for a in args]
        p = H.spawn(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(env.s.cwd))
        procs.append((args, p, out, err))
    results = []
    for args, p, out, err in procs:
        try:
            rc = H.finish(p, timeout=60)
        except subprocess.TimeoutExpired:
            H.kill_and_finish(p)
            rc = "timeout"
        out.seek(0)
        err.seek(0)
        results.append((args, rc, out.read().decode(errors="replace"), err.read().decode(errors="replace")))
        out.close()
        err.close()
    return results


def test_parallel_kill_state_delete(env, bundle):
    set_args(bundle, "sleep", "1000")
    res = assert_ok(env.create(bundle))
    cid = res.cid
    assert_ok(env.start(cid))
    env.state(cid)  # record the pid for the leak checker
    calls = []
    for _ in range(4):
        calls += [["state", cid], ["kill", cid, "9"], ["delete", "--force", cid]]
    calls += [["kill", cid, "15"], ["state", cid]]
    problems = []
    for args, rc, out, err in spawn_many(env, calls):
        sub = args[0]
        if rc == "timeout" or not isinstance(rc, int) or rc < 0:
            problems.append(f"{args}: {rc} {err}")
        elif sub == "delete" and rc != 0:
            problems.append(f"{args}: delete --force must always succeed: rc={rc} {err.strip()}")
        elif sub == "state":
            if rc == 0:
                try:
                    st = json.loads(out)
                    assert st["id"] == cid and st["status"] in ("running", "stopped", "created")
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{args}: bad state output {out!r}: {e!r}")
            elif not any(m in err for m in EXPECTED_STATE_ERRORS):
                problems.append(f"{args}: unexpected error rc={rc}: {err.strip()}")
        elif sub == "kill" and rc != 0 and not any(m in err for m in EXPECTED_KILL_ERRORS):
            problems.append(f"{args}: unexpected error rc={rc}: {err.strip()}")
    assert not problems, "\n".join(problems)
    assert env.state(cid) is None
    env.assert_no_trace(cid, bundle)


def test_parallel_create_delete_cycles(env, make_bundle):
    n = 20
    bundles = [make_bundle(f"p{i}") for i in range(n)]
    for b in bundles:
        set_args(b, "sleep", "1000")

    def cycle(b):
        cid = env.new_id("par")
        steps = []
        r = env.create(b, cid, timeout=60)
        steps.append(("create", r))
        if r.rc == 0:
            st = env.state(cid)
            steps.append(("state", st))
            steps.append(("start", env.start(cid, timeout=60)))
            steps.append(("delete", env.delete(cid, force=True, timeout=60)))
        return cid, b, steps

    with ThreadPoolExecutor(max_workers=6) as ex:
        results = list(ex.map(cycle, bundles))
    problems = []
    for cid, b, steps in results:
        for name, r in steps:
            if name == "state":
                if not r or r["status"] != "created":
                    problems.append(f"{cid}: state after create: {r}")
            elif r.rc != 0:
                problems.append(f"{cid}: {name} failed: {r!r}")
    assert not problems, "\n".join(problems)
    rc, out, err = env.runtime("list", "-q")
    assert rc == 0 and out.strip() == "", (out, err)
    for cid, b, _ in results:
        env.assert_no_trace(cid, b)


def test_parallel_create_same_id(env, make_bundle):
    """Only one of several simultaneous creates with the same id wins; the others fail
    and leave nothing of their own behind."""
    bundles = [make_bundle(f"s{i}") for i in range(5)]
    for b in bundles:
        set_args(b, "sleep", "1000")
    cid = env.new_id()
    env.ids.append(cid)
    results = spawn_many(env, [["create", "--bundle", b, cid] for b in bundles])
    winners = [i for i, (_, rc, _, _) in enumerate(results) if rc == 0]
    assert len(winners) == 1, [(a[-1], rc, e.strip()) for a, rc, _, e in results]
    st = env.state(cid)
    assert st and st["status"] == "created", st
    assert st["bundle"].rstrip("/").endswith(f"s{winners[0]}"), st
    for i, b in enumerate(bundles):
        if i == winners[0]:
            continue
        cg = H.read_config(b)["linux"]["cgroupsPath"]
        assert not [mp for mp in H.cgroup_mounts() if __import__("os").path.isdir(mp + cg)], \
            f"a losing create left its cgroup {cg}"
    assert_ok(env.delete(cid, force=True))
    env.assert_no_trace(cid)


def test_parallel_runs(env, make_bundle):
    bundles = [make_bundle(f"r{i}") for i in range(8)]
    for i, b in enumerate(bundles):
        H.sh(b, f"echo out-{i}; exit {i}")
    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(lambda b: env.run(b, timeout=60), bundles))
    for i, r in enumerate(results):
        assert r.rc == i and r.out == f"out-{i}\n", r
