# bash completion for berth-shim(8), the per-container monitor (options: shim/lib/options.cpp).
# Installed as <datadir>/bash-completion/completions/berth-shim.
# Without the bash-completion package, `--flag=value' words are not split: use `--flag value'.

_berth_shim() {
  local cur prev words cword split=false
  if declare -F _init_completion >/dev/null; then
    _init_completion -s || return
  else
    words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  fi
  local clients="state wait reopen-log resize close-stdin attach exec"
  local command=run state_dir=/run/berth-shim i
  [[ " $clients help " == *" ${words[1]} "* ]] && command=${words[1]}
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      --state-dir) state_dir=${words[i + 1]} ;;
      --state-dir=*) state_dir=${words[i]#*=} ;;
    esac
  done
  case $prev in
    --bundle | -b | --state-dir | --exit-dir) compopt -o filenames; COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --runtime | -r | --log-path | -l | --memory-events | --shim-log | --process | -p)
      compopt -o filenames; COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --id | --runtime-arg | --log-max-line | --timeout) return ;;
  esac
  $split && return
  if [[ $command == run ]]; then
    if ((cword == 1)) && [[ $cur != -* ]]; then
      COMPREPLY=($(compgen -W "run $clients help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "--id --bundle --runtime --runtime-arg --state-dir --exit-dir --log-path
        --log-max-line --stdin --stdin-once --start --delete --timeout --memory-events --shim-log --foreground
        --help --version" -- "$cur"))
    fi
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "--state-dir --exit-dir --tty --stdin --timeout --process --help" -- "$cur"))
  elif [[ $command != help ]]; then
    # Container ids: one directory per shim under the state root (exits/ is not one).
    local ids=$(cd "$state_dir" 2>/dev/null && compgen -d | grep -vx exits)
    COMPREPLY=($(compgen -W "$ids" -- "$cur"))
  fi
}

complete -F _berth_shim berth-shim
