# bash completion for berth(8), a runc-compatible OCI container runtime.
# Installed as <datadir>/bash-completion/completions/berth; works without the
# bash-completion package too (then `--flag=value` words are not split).

_berth_commands="checkpoint create delete rm events exec kill list ls pause ps restore resume run spec start
state update features help"

_berth_global_value_flags="--root --log --log-format --criu --rootless --cgroup-manager"
_berth_global_bool_flags="--debug --systemd-cgroup --help -h --version -v"

# Sets value_flags and bool_flags for a command (canonical or alias name).
_berth_command_flags() {
  value_flags="" bool_flags="--help -h"
  case $1 in
    create)
      value_flags="--bundle -b --console-socket --pidfd-socket --pid-file --preserve-fds"
      bool_flags+=" --no-pivot --no-new-keyring" ;;
    run)
      value_flags="--bundle -b --console-socket --pidfd-socket --pid-file --preserve-fds"
      bool_flags+=" --detach -d --keep --no-subreaper --no-pivot --no-new-keyring" ;;
    delete | rm) bool_flags+=" --force -f" ;;
    kill) bool_flags+=" --all -a" ;;
    list | ls)
      value_flags="--format -f"
      bool_flags+=" --quiet -q" ;;
    ps) value_flags="--format -f" ;;
    events)
      value_flags="--interval"
      bool_flags+=" --stats" ;;
    exec)
      value_flags="--console-socket --pidfd-socket --cwd --env -e --user -u --additional-gids -g --process -p
        --pid-file --process-label --apparmor --cap -c --preserve-fds --cgroup"
      bool_flags+=" --tty -t --detach -d --no-new-privs --ignore-paused" ;;
    update)
      value_flags="--resources -r --blkio-weight --cpu-period --cpu-quota --cpu-burst --cpu-rt-period
        --cpu-rt-runtime --cpu-share --cpuset-cpus --cpuset-mems --cpu-idle --memory --memory-reservation
        --memory-swap --pids-limit --l3-cache-schema --mem-bw-schema" ;;
    spec)
      value_flags="--bundle -b"
      bool_flags+=" --rootless" ;;
    checkpoint)
      value_flags="--image-path --work-path --parent-path --status-fd --page-server --manage-cgroups-mode --empty-ns"
      bool_flags+=" --leave-running --tcp-established --ext-unix-sk --shell-job --lazy-pages --file-locks --pre-dump
        --auto-dedup" ;;
    restore)
      value_flags="--console-socket --image-path --work-path --manage-cgroups-mode --bundle -b --pid-file --empty-ns
        --lsm-profile --lsm-mount-context"
      bool_flags+=" --tcp-established --ext-unix-sk --shell-job --file-locks --detach -d --no-subreaper --no-pivot
        --auto-dedup --lazy-pages" ;;
  esac
}

# Flag name without its one or two leading dashes.
_berth_flag_name() {
  local name=${1#-}
  printf '%s' "${name#-}"
}

# True when word $1 (any dash form, no '=') is one of the flags in list $2.
_berth_in_list() {
  local word item
  [[ $1 == -* && $1 != *=* ]] || return 1
  word=$(_berth_flag_name "$1")
  for item in $2; do
    [[ $(_berth_flag_name "$item") == "$word" ]] && return 0
  done
  return 1
}

_berth_containers() {
  local -a global=()
  [[ -n $berth_root ]] && global=(--root "$berth_root")
  COMPREPLY=($(compgen -W "$("${words[0]:-berth}" "${global[@]}" list -q 2>/dev/null)" -- "$cur"))
}

_berth() {
  local cur prev words cword split=false
  if declare -F _init_completion >/dev/null; then
    _init_completion -s || return
  else
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
  fi

  # Global options run up to the command word.
  local i word command="" command_index=0 berth_root=""
  for ((i = 1; i < cword; i++)); do
    word=${words[i]}
    if _berth_in_list "$word" "$_berth_global_value_flags"; then
      [[ $(_berth_flag_name "$word") == root ]] && berth_root=${words[i + 1]}
      ((i++))
    elif [[ $word == --root=* || $word == -root=* ]]; then
      berth_root=${word#*=}
    elif [[ $word == -* ]]; then
      continue
    else
      command=$word command_index=$i
      break
    fi
  done

  if [[ -z $command ]]; then
    if _berth_in_list "$prev" "$_berth_global_value_flags"; then
      case $(_berth_flag_name "$prev") in
        log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")) ;;
        rootless) COMPREPLY=($(compgen -W "true false auto" -- "$cur")) ;;
        cgroup-manager) COMPREPLY=($(compgen -W "cgroupfs systemd disabled" -- "$cur")) ;;
        root) declare -F _filedir >/dev/null && _filedir -d ;;
        log | criu) declare -F _filedir >/dev/null && _filedir ;;
      esac
      return
    fi
    $split && return
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$_berth_global_value_flags $_berth_global_bool_flags" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$_berth_commands" -- "$cur"))
    fi
    return
  fi

  local value_flags bool_flags
  _berth_command_flags "$command"

  if _berth_in_list "$prev" "$value_flags"; then
    case $(_berth_flag_name "$prev") in
      bundle | b | image-path | work-path | parent-path)
        declare -F _filedir >/dev/null && _filedir -d ;;
      pid-file | process | p | resources | r | console-socket | pidfd-socket)
        declare -F _filedir >/dev/null && _filedir ;;
      format | f) COMPREPLY=($(compgen -W "table json" -- "$cur")) ;;
      manage-cgroups-mode) COMPREPLY=($(compgen -W "soft full strict" -- "$cur")) ;;
      empty-ns) COMPREPLY=($(compgen -W "cgroup ipc mount network pid user uts" -- "$cur")) ;;
      cap | c)
        COMPREPLY=($(compgen -W "CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_AUDIT_WRITE CAP_BLOCK_SUSPEND CAP_BPF
          CAP_CHECKPOINT_RESTORE CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_IPC_LOCK
          CAP_IPC_OWNER CAP_KILL CAP_LEASE CAP_LINUX_IMMUTABLE CAP_MAC_ADMIN CAP_MAC_OVERRIDE CAP_MKNOD
          CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_RAW CAP_PERFMON CAP_SETFCAP CAP_SETGID
          CAP_SETPCAP CAP_SETUID CAP_SYSLOG CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_CHROOT CAP_SYS_MODULE CAP_SYS_NICE
          CAP_SYS_PACCT CAP_SYS_PTRACE CAP_SYS_RAWIO CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG
          CAP_WAKE_ALARM" -- "$cur")) ;;
    esac
    return
  fi
  $split && return

  # Operands so far. exec and ps stop taking options at the container id; the
  # other commands take them anywhere, as runc does.
  local -a operands=()
  local options_done=false
  for ((i = command_index + 1; i < cword; i++)); do
    word=${words[i]}
    if ! $options_done && [[ $word == -* && $word != - ]]; then
      [[ $word == -- ]] && { options_done=true; continue; }
      _berth_in_list "$word" "$value_flags" && ((i++))
      continue
    fi
    operands+=("$word")
    [[ $command == exec || $command == ps ]] && options_done=true
  done

  if [[ $cur == -* ]] && ! $options_done; then
    COMPREPLY=($(compgen -W "$value_flags $bool_flags" -- "$cur"))
    return
  fi

  case $command in
    help | h) ((${#operands[@]} == 0)) && COMPREPLY=($(compgen -W "$_berth_commands" -- "$cur")) ;;
    list | ls | spec | features) ;;
    kill)
      if ((${#operands[@]} == 0)); then
        _berth_containers
      elif ((${#operands[@]} == 1)); then
        # runc takes names with or without SIG, and numbers.
        local signals="HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP
          TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS" signal sig_prefixed=""
        for signal in $signals; do sig_prefixed+=" SIG$signal"; done
        COMPREPLY=($(compgen -W "$signals $sig_prefixed" -- "$cur"))
      fi ;;
    *) ((${#operands[@]} == 0)) && _berth_containers ;;
  esac
}

complete -F _berth berth
