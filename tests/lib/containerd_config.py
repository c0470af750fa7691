"""containerd 1.6 configurations for the suites and benches: root, state, sockets and the
debug socket all under one private directory, so a test's containerd never meets the
host's. Callers append their own plugin sections."""
from __future__ import annotations

import os

# berth refuses a container whose linux.resources this host cannot enforce (on a hybrid
# cgroup host the v2 hierarchy has no resource controllers), and containerd sets
# cpu.shares on every container. containerd's runc options carry no runtime flags, but
# its shims pass their environment on to the runtime: the opt-in rides along there. On a
# host that enforces limits (tests/vm) it changes nothing; runc and crun ignore it.
UNENFORCED_LIMITS_OPT_IN = {"BERTH_ALLOW_UNENFORCED_LIMITS": "1"}


def daemon_env(base=None) -> dict[str, str]:
    """The environment for a test's containerd: the caller's plus berth's opt-in."""
    return {**(os.environ if base is None else base), **UNENFORCED_LIMITS_OPT_IN}


def private_config(root, sock, *, log_level="info", disabled_plugins=()):
    disabled = ""
    if disabled_plugins:
        disabled = "disabled_plugins = [" + ", ".join(f'"{p}"' for p in disabled_plugins) + "]\n"
    return f"""version = 2
root = "{root}/root"
state = "{root}/state"
oom_score = 0
{disabled}
[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = "{root}/debug.sock"
  level = "{log_level}"

[metrics]
  address = ""

"""
