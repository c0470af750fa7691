# shellcheck shell=bash
# Shared by the VM suite runners (run-cgroup-tests.sh, run-systemd-node.sh): a one-case
# JUnit report for outcomes pytest cannot write (skipped, VM failure), and the probe that
# tells "cannot run here" (skip, counted) from "broken" (failure).
#
# The caller sets: suite (the JUnit suite name, e.g. vm-cgroupv2), what (for messages),
# junit (the report path or ""), vmrun.

say() { echo "vm: $*"; }

report_outcome() {
  [[ -n $junit && ! -s $junit ]] || return 0
  local kind=$1 msg=${2//\"/&quot;}
  mkdir -p "$(dirname "$junit")"
  printf '<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="%s" tests="1" failures="%d" errors="0" skipped="%d">\n<testcase classname="tests.vm" name="%s"><%s message="%s"/></testcase>\n</testsuite></testsuites>\n' \
    "$suite" "$([[ $kind == failure ]] && echo 1 || echo 0)" "$([[ $kind == skipped ]] && echo 1 || echo 0)" \
    "${suite//-/_}" "$kind" "$msg" >"$junit"
}

# Exits 0 (skipped, reported) when the harness cannot run here, 1 when it is broken.
probe_or_skip() {
  if [[ $(id -u) != 0 ]]; then
    say "$what SKIPPED (must run as root)"
    report_outcome skipped "must run as root"
    exit 0
  fi
  local probe_err prc reason
  probe_err=$(mktemp /tmp/vm-probe.XXXXXX) || { say "cannot create a temp file"; exit 2; }
  "$vmrun" --probe >/dev/null 2>"$probe_err"
  prc=$?
  if ((prc == 77)); then
    reason=$(sed -n 's/^vmrun: //p' "$probe_err" | head -n1)
    rm -f "$probe_err"
    say "$what SKIPPED (${reason:-the VM harness cannot run here})"
    report_outcome skipped "${reason:-the VM harness cannot run here}"
    exit 0
  elif ((prc != 0)); then
    say "the VM harness is installed but the probe guest failed (vmrun --probe exit $prc):"
    sed 's/^/  /' "$probe_err"
    rm -f "$probe_err"
    report_outcome failure "the probe guest failed (vmrun --probe exit $prc)"
    exit 1
  fi
  [[ -s $probe_err ]] && sed 's/^/  probe: /' "$probe_err"
  rm -f "$probe_err"
}

# vmrun's own statuses (77 cannot run, 124 timeout, 125 VM failure) as outcomes.
vm_status_outcome() {
  case $1 in
    77) say "$what SKIPPED (the VM harness cannot run here)"; report_outcome skipped "the VM harness cannot run here"; return 0 ;;
    124) say "$what TIMED OUT after $2 s"; report_outcome failure "timed out after $2 s"; return 1 ;;
    125) say "$what: the VM failed"; report_outcome failure "the VM failed"; return 1 ;;
  esac
  return "$1"
}
