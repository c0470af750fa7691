"""containerd 1.6 configurations for the suites and benches: root, state, sockets and the
debug socket all under one private directory, so a test's containerd never meets the
host's. Callers append their own plugin sections."""
from __future__ import annotations


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
