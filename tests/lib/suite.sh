# Shared pieces of the suites' entry scripts (tests/*/run.sh), sourced by them. Each
# suite runs in a private mount namespace under one temp root; these undo what it made.
# Only processes started by the run are ever signalled: they name the root on their
# command line, or live in the run's own cgroups.

# Kills every process (but this shell) whose command line mentions $1.
suite_kill_procs_mentioning() {
  local needle=$1 p c
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    c=$( { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) || continue
    case $c in *"$needle"*) kill -KILL "$p" 2>/dev/null ;; esac
  done
}

# Unmounts everything at or below $1, deepest first.
suite_umount_under() {
  awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
}

# Removes the cgroup $1 (a name at the top of each hierarchy, made by this run) in every
# hierarchy: thaws it, kills what is left inside (only the run's containers can be), and
# removes the directories deepest first. $2 names the suite in the error message.
suite_remove_cgroup() {
  local name=$1 who=$2 mnt d
  awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo | while read -r mnt; do
    d="$mnt/$name"
    [ -d "$d" ] || continue
    find "$d" -name freezer.state -exec sh -c 'echo THAWED > "$1"' _ {} \; 2>/dev/null
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u |
      while read -r p; do kill -KILL "$p" 2>/dev/null; done
    sleep 0.2
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$d" ] && echo "$who: could not remove $d" >&2
  done
  return 0
}

# Copies the binary $1 to $2/bin/<name> and prints it: a concurrent rebuild must not
# swap the binary under test in the middle of a run. $3 names the suite.
suite_snapshot_binary() {
  local bin=$1 root=$2 who=$3 copy
  copy="$root/bin/$(basename "$bin")"
  mkdir -p "$root/bin"
  cp "$bin" "$copy"
  echo "$who: $(basename "$bin") under test: $bin (sha256 $(sha256sum <"$bin" | cut -c1-16))" >&2
  echo "$copy"
}

# Sets SUITE_PATHS to pytest's paths: the suite's directory $1, unless the remaining
# arguments name tests themselves.
suite_pytest_paths() {
  local dir=$1 a
  shift
  SUITE_PATHS=("$dir")
  for a in "$@"; do
    case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && SUITE_PATHS=() ;; esac
  done
  return 0
}
