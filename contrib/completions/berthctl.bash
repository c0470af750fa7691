# bash completion for berthctl(1), the CRI client (commands and flags: ctl/lib/cli.cpp).
# Installed as <datadir>/bash-completion/completions/berthctl.
# Container, pod and image ids are completed from the runtime (one list call, 2 s at most).

_berthctl_ids() {
  # The endpoint flags already typed apply to the lookup.
  local args=() i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -r | --runtime-endpoint | -i | --image-endpoint) args+=("${words[i]}" "${words[i + 1]}") ;;
    esac
  done
  berthctl "${args[@]}" -t 2 "$@" 2>/dev/null
}

_berthctl() {
  local cur prev words cword split=false
  if declare -F _init_completion >/dev/null; then
    _init_completion -s -n : || return
  else
    words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  fi
  local commands="version info pods ps images image pull rmi inspect inspectp inspecti logs stats statsp exec
    attach runp create run start stop rm stopp rmp events"
  local cmd="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -r | --runtime-endpoint | -i | --image-endpoint | -t | --timeout) ((i++)) ;;
      -*) ;;
      *) cmd=${words[i]}; break ;;
    esac
  done
  case $prev in
    -r | --runtime-endpoint | -i | --image-endpoint)
      [[ -z $cmd ]] || return
      COMPREPLY=($(compgen -W "unix:///run/berthd/berthd.sock unix:///run/containerd/containerd.sock
        unix:///run/crio/crio.sock" -- "$cur"))
      declare -F __ltrim_colon_completions >/dev/null && __ltrim_colon_completions "$cur"
      return ;;
    -o | --output) COMPREPLY=($(compgen -W "json yaml table" -- "$cur")); return ;;
    --state | -s)
      case $cmd in
        pods) COMPREPLY=($(compgen -W "ready notready" -- "$cur")); return ;;
        ps) COMPREPLY=($(compgen -W "created running exited unknown" -- "$cur")); return ;;
      esac ;;
    -p | --pod | --pod-config)
      if [[ $cmd == pull ]]; then compopt -o filenames; COMPREPLY=($(compgen -f -- "$cur")); return; fi
      COMPREPLY=($(compgen -W "$(_berthctl_ids pods -q)" -- "$cur")); return ;;
    -t | --timeout | --tail | --since | --name | --namespace | --label | --id | --creds | --auth | -n | --last | \
      --seconds | --image) return ;;
  esac
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "$commands -r --runtime-endpoint -i --image-endpoint -t --timeout --version --help" \
      -- "$cur"))
    return
  fi
  local flags
  case $cmd in
    pods) flags="--id --name --namespace --state --label -q --quiet -o --output -l --latest -n --last" ;;
    ps) flags="-a --all --id -p --pod --name --image --state --label -q --quiet -o --output -l --latest -n --last" ;;
    images | image) flags="-q --quiet --digests -o --output" ;;
    pull) flags="--creds --auth -p --pod-config" ;;
    rmi) flags="-a --all -q --prune" ;;
    inspect | inspectp | inspecti | info) flags="-o --output" ;;
    logs) flags="-f --follow --tail --since -t --timestamps" ;;
    stats) flags="-a --all --id -p --pod --label -o --output -w --watch -s --seconds" ;;
    statsp) flags="--id --label -o --output -w --watch -s --seconds" ;;
    exec) flags="-i --interactive -t --tty -s --sync --timeout" ;;
    attach) flags="-i --stdin -t --tty" ;;
    runp) flags="-r --runtime" ;;
    create) flags="--no-pull" ;;
    run) flags="-r --runtime --no-pull" ;;
    stop) flags="-t --timeout" ;;
    rm | rmp) flags="-f --force -a --all" ;;
    events) flags="-o --output" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
    return
  fi
  case $cmd in
    inspect | logs | exec | attach | start | stop | rm | stats) COMPREPLY=($(compgen -W "$(_berthctl_ids ps -a -q)" -- "$cur")) ;;
    inspectp | stopp | rmp | statsp) COMPREPLY=($(compgen -W "$(_berthctl_ids pods -q)" -- "$cur")) ;;
    rmi | inspecti) COMPREPLY=($(compgen -W "$(_berthctl_ids images -q)" -- "$cur")) ;;
    runp | run | create) compopt -o filenames; COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}

complete -F _berthctl berthctl
