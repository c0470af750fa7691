"""The Debian package berth_*.deb: its files, conffiles and maintainer scripts
(dpkg-deb), its dependencies against this system (apt-get --simulate), its binaries
(extracted), and a real install and purge in a throwaway copy of the root file system
(in_throwaway_root.sh), which must leave the host as it was.

Root. BERTH_DEB=/path/to/berth_*.deb, else the package is built with build-deb.sh."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SBIN = ["berth", "berth-systemd", "berth-shim", "berthd", "berthlet"]
MAN8 = SBIN + ["berth-bridge", "berth-cni"]
COMPLETIONS = ["berth", "berthd", "berthlet", "berth-shim", "berth-cni", "berthctl"]
UNITS = ["berthd.service", "berthlet.service"]
CONFFILES = ["/etc/berth/berthd.toml", "/etc/berth/berthlet.yaml"]
CNI_PLUGIN = "/usr/lib/cni/berth-bridge"
CNI_LINK = "/opt/cni/bin/berth-bridge"
CONFLIST = "/usr/share/doc/berth/examples/10-berth.conflist"
# bookworm's systemd.pc and dh_installsystemd: /lib/systemd/system; later: /usr/lib/...
UNIT_DIRS = ["/lib/systemd/system", "/usr/lib/systemd/system"]
# What a real install puts on the system; none of it may reach the host.
INSTALLED = ([f"/usr/sbin/{b}" for b in SBIN] + ["/usr/bin/berth-cni", "/usr/bin/berthctl", "/usr/libexec/berth/berth-pause",
             CNI_PLUGIN, CNI_LINK, CONFLIST] + CONFFILES + [f"/lib/systemd/system/{u}" for u in UNITS])


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def deb(tmp_path_factory):
    if os.environ.get("BERTH_DEB"):
        return Path(os.environ["BERTH_DEB"]).resolve()
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([HERE / "build-deb.sh", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    (path,) = out.glob("berth_*.deb")
    return path


@pytest.fixture(scope="session")
def contents(deb):
    """Path -> (type letter, symlink target or None), from dpkg-deb -c."""
    out = {}
    for line in run("dpkg-deb", "-c", deb).stdout.splitlines():
        perms, _owner, _size, _date, _time, rest = line.split(None, 5)
        name, _, target = rest.partition(" -> ")
        out[name[1:].rstrip("/") or "/"] = (perms[0], target or None)
    return out


@pytest.fixture(scope="session")
def control(deb, tmp_path_factory):
    d = tmp_path_factory.mktemp("control") / "DEBIAN"
    run("dpkg-deb", "-e", deb, d)
    return d


@pytest.fixture(scope="session")
def extracted(deb, tmp_path_factory):
    d = tmp_path_factory.mktemp("root")
    run("dpkg-deb", "-x", deb, d)
    return d


def unit_dir(contents):
    dirs = [d for d in UNIT_DIRS if f"{d}/berthd.service" in contents]
    assert dirs, "no berthd.service in " + " or ".join(UNIT_DIRS)
    return dirs[0]


def test_binaries_units_man_pages_completions(contents):
    expected = [f"/usr/sbin/{b}" for b in SBIN] + ["/usr/bin/berth-cni", "/usr/libexec/berth/berth-pause"]
    expected += [f"{unit_dir(contents)}/{u}" for u in UNITS]
    expected += [f"/usr/share/man/man8/{m}.8.gz" for m in MAN8]
    expected += ["/usr/bin/berthctl", "/usr/share/man/man1/berthctl.1.gz"]
    expected += [f"/usr/share/bash-completion/completions/{c}" for c in COMPLETIONS]
    expected += CONFFILES + [CNI_PLUGIN, CONFLIST]
    missing = [p for p in expected if contents.get(p, ("?",))[0] != "-"]
    assert not missing, f"missing or not regular files: {missing}"
    # Installing enables nothing: no unit symlinks, no network configuration.
    assert not [p for p in contents if ".wants/" in p or p.startswith("/etc/cni")]


def test_cni_plugin_where_runtimes_look(contents):
    kind, target = contents[CNI_LINK]
    assert kind == "l"
    assert os.path.normpath(os.path.join(os.path.dirname(CNI_LINK), target)) == CNI_PLUGIN


def test_configs_are_conffiles(control):
    assert sorted((control / "conffiles").read_text().split()) == sorted(CONFFILES)


def test_maintainer_scripts_neither_enable_nor_start(control):
    postinst = (control / "postinst").read_text()
    # dh_installsystemd's default snippet enables on first install ("was-enabled" is
    # true for a unit never seen); --no-enable keeps only an admin's own choice.
    assert "Enables the unit on first installation" not in postinst
    for unit in UNITS:
        assert f"deb-systemd-helper update-state '{unit}'" in postinst  # purge removes its links
    # The only action on units: try-restart (what already runs), on upgrade ("$2" is the
    # old version) only.
    assert set(re.findall(r"deb-systemd-invoke\s+(\S+)", postinst)) == {"try-restart"}
    assert 'if [ -n "$2" ]; then' in postinst
    assert not re.search(r"systemctl\s+(--\S+\s+)*(start|restart|enable)\b|invoke-rc\.d", postinst)
    # Nothing is stopped before an upgrade; removal stops the daemons.
    assert not (control / "preinst").exists() or "stop" not in (control / "preinst").read_text()
    assert re.search(r'"\$1" = remove .*\n\tdeb-systemd-invoke stop berthlet.service berthd.service',
                     (control / "prerm").read_text())


def test_depends_resolve_on_this_system(deb, control):
    fields = (control / "control").read_text()
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    for lib in ("libcurl4", "libarchive13", "libmicrohttpd12"):  # dlopen()ed
        assert lib in depends
    r = subprocess.run(["apt-get", "install", "--simulate", "-o", "Debug::NoLocking=1", str(deb)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^Inst berth ", r.stdout, re.M), r.stdout


def test_extracted_binaries_run(extracted, control, tmp_path):
    version = re.search(r"^Version: ([^-\s]+)", (control / "control").read_text(), re.M).group(1)
    for b in ("berth", "berthd", "berthlet", "berth-shim", "berth-systemd"):
        out = run(extracted / "usr/sbin" / b, "--version").stdout
        assert version in out, f"{b} --version: {out}"
        # The package is built from a copy without .git: the commit travels in .git-commit.
        assert re.search(r"^commit: [0-9a-f]{7,40}(-dirty)?$", out, re.M), f"{b} --version: {out}"
    for b in ("berthctl", "berth-cni"):
        out = run(extracted / "usr/bin" / b, "--version").stdout
        assert version in out and "commit: " in out, f"{b} --version: {out}"
    # Static-pie binaries survive dh_strip and dh_shlibdeps: no interpreter, and berth
    # still does real work (its spec).
    for b in ("usr/sbin/berth", "usr/sbin/berth-shim", "usr/lib/cni/berth-bridge"):
        assert "INTERP" not in run("readelf", "-lW", extracted / b).stdout, f"{b} is not static"
    run(extracted / "usr/sbin/berth", "spec", "--bundle", tmp_path)
    assert '"ociVersion"' in (tmp_path / "config.json").read_text()


@pytest.mark.skipif(not os.path.exists("/usr/lib/cni/portmap"), reason="no portmap (containernetworking-plugins)")
def test_example_network_validates(extracted):
    # Every plugin of the example exists and speaks its cniVersion: berth-bridge from the
    # package, portmap from containernetworking-plugins.
    examples = extracted / CONFLIST[1:].rsplit("/", 1)[0]
    r = run(extracted / "usr/bin/berth-cni", "--conf-dir", examples,
            "--bin-dir", f"{extracted}/usr/lib/cni:/usr/lib/cni", "validate", "berth")
    assert r.returncode == 0


def host_state():
    state = {p: os.lstat(p).st_mtime_ns if os.path.lexists(p) else None for p in INSTALLED}
    state["dpkg"] = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "berth"],
                                   capture_output=True, text=True).stdout
    return state


def test_install_and_purge_in_throwaway_root(deb, tmp_path):
    before = host_state()
    shutil.copy(deb, tmp_path / deb.name)
    pkg = f"/tmp/berth-pkg/{deb.name}"
    files = " ".join(INSTALLED)
    script = tmp_path / "check.sh"
    script.write_text(f"""#!/bin/sh
log=/tmp/berth-pkg/apt.log
present() {{ for f in {files}; do [ -e "$f" ] || [ -L "$f" ] && echo "$1 $f"; done; }}
apt-get install -y {pkg} >$log 2>&1 || {{ echo install-failed; exit 0; }}
echo "status $(dpkg-query -W -f='${{db:Status-Abbrev}}' berth)"
echo "berthd $(/usr/sbin/berthd --version)"
for u in {' '.join(UNITS)}; do echo "is-enabled $u $(systemctl --root=/ is-enabled $u 2>&1)"; done
echo "wants $(find /etc/systemd/system -name 'berth*' | tr '\\n' ' ')"
for p in /proc/[0-9]*; do [ "$(readlink $p/exe)" = /usr/sbin/berthd ] && echo "running $p"; done
present installed
apt-get purge -y berth >>$log 2>&1 || echo purge-failed
echo "purged $(dpkg-query -W -f='${{db:Status-Abbrev}}' berth 2>&1)"
present left
exit 0
""")
    script.chmod(0o755)
    try:
        r = subprocess.run([HERE / "in_throwaway_root.sh", tmp_path, "/tmp/berth-pkg/check.sh"],
                           capture_output=True, text=True, timeout=600)
    finally:
        after = host_state()
    log = (tmp_path / "apt.log").read_text() if (tmp_path / "apt.log").exists() else ""
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "install-failed" not in out and "purge-failed" not in out, log[-4000:]
    assert "status ii " in out, out
    assert re.search(r"^berthd berthd \S+", out, re.M), out
    for u in UNITS:
        assert f"is-enabled {u} disabled" in out, out
    assert re.search(r"^wants $", out, re.M) and "running " not in out, out
    installed = {l.split(" ", 1)[1] for l in out.splitlines() if l.startswith("installed ")}
    assert installed == set(INSTALLED), f"not installed: {set(INSTALLED) - installed}"
    assert not [l for l in out.splitlines() if l.startswith("left ")], out
    assert re.search(r"^purged (un |.*no packages found)", out, re.M), out
    assert after == before, "the host changed"
