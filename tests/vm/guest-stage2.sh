#!/run/vmrun/busybox sh
# shellcheck shell=dash
# vmrun guest, stage 2: PID 1 after switch_root (a copy of the static busybox runs it).
#
# Puts /dev/hvc0 (the virtconsole, a file on the host) in raw mode and keeps it open,
# loads --modules, prints VMRUN_BOOT_DONE on the kernel console (the host's boot
# watchdog waits for it), runs /run/vmrun/ctl/cmd.sh with bash in a new session with a
# clean environment, stdin /dev/null and stdout+stderr on hvc0, then drains hvc0,
# writes the exit status to the control share (ctl/rc), prints VMRUN_EXIT_CODE=<rc> on
# the console and powers off.
#
# With --systemd (SYSTEMD=1), stage 2 instead execs systemd as PID 1 with the target
# vmrun.target, whose one service runs the same steps (systemd_command below); the
# guest is then a systemd host: units, journald, systemctl, sd-bus, the watchdog.
BB=/run/vmrun/busybox
CTL=/run/vmrun/ctl
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
exec </dev/null >/dev/console 2>&1

off() {
  $BB sync
  $BB poweroff -f
  $BB sleep 2
  $BB reboot -f
}
fail() {
  echo "vmrun-stage2: $*"
  echo "VMRUN_INIT_FAILED"
  off
}

MODULES=
TIMING=
SYSTEMD=
. $CTL/config || fail "cannot read the control share's config"

# hvc resets its termios on the last close: keep fd 3 open for the whole run.
exec 3<>/dev/hvc0 || fail "cannot open /dev/hvc0"
$BB stty -F /dev/hvc0 raw -echo || fail "cannot set /dev/hvc0 to raw mode"

if [ -n "$MODULES" ]; then
  modprobe -a $MODULES || fail "modprobe -a $MODULES failed"
fi

echo "VMRUN_BOOT_DONE"

run_command() {
  [ "$TIMING" = 1 ] && echo "VMRUN_TIMING start=$($BB cut -d' ' -f1 /proc/uptime)" >/dev/console
  $BB setsid $BB env -i PATH="$PATH" HOME=/root TERM=dumb LANG=C.UTF-8 VMRUN_GUEST=1 \
    /bin/bash $CTL/cmd.sh </dev/null >&3 2>&3
  rc=$?
  # busybox stty applies settings with TCSADRAIN: returns once hvc0 has been drained.
  $BB stty -F /dev/hvc0 raw -echo
  [ "$TIMING" = 1 ] && echo "VMRUN_TIMING end=$($BB cut -d' ' -f1 /proc/uptime)" >/dev/console
  echo "$rc" >$CTL/rc.tmp && $BB mv $CTL/rc.tmp $CTL/rc
  echo "VMRUN_EXIT_CODE=$rc" >/dev/console
  off
}

# The service's ExecStart (stage2 --systemd-command): a fresh hvc0 (systemd closed ours).
if [ "${1:-}" = --systemd-command ]; then
  exec 3<>/dev/hvc0 || fail "cannot open /dev/hvc0"
  $BB stty -F /dev/hvc0 raw -echo || fail "cannot set /dev/hvc0 to raw mode"
  run_command
fi

if [ "$SYSTEMD" = 1 ]; then
  # Only what the command asks for runs: not the host's multi-user units, no fstab
  # (its devices are not in the guest), no timers (apt-daily would take dpkg's lock).
  U=/etc/systemd/system
  : >/etc/fstab
  $BB ln -sf /dev/null $U/timers.target
  cat >$U/vmrun.target <<EOT || fail "cannot write $U/vmrun.target"
[Unit]
Description=vmrun: the command's target
Requires=vmrun-command.service
After=vmrun-command.service
AllowIsolate=yes
EOT
  cat >$U/vmrun-command.service <<EOT || fail "cannot write $U/vmrun-command.service"
[Unit]
Description=vmrun: the command
After=basic.target
[Service]
Type=exec
ExecStart=/run/vmrun/stage2 --systemd-command
StandardInput=null
StandardOutput=journal+console
EOT
  exec 3>&-
  exec /lib/systemd/systemd --unit=vmrun.target
fi
run_command
