# bash completion for berthd(8), the Berth CRI daemon (flags: cri/server/config.cpp).
# Installed as <datadir>/bash-completion/completions/berthd.
# Without the bash-completion package, `--flag=value' words are not split: use `--flag value'.

_berthd() {
  local cur prev words cword split=false
  if declare -F _init_completion >/dev/null; then
    _init_completion -s || return
  else
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} cword=$COMP_CWORD
  fi
  case $prev in
    --config | --address) compopt -o filenames; COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --root | --state-dir | --cni-conf-dir) compopt -o filenames; COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    --cgroup-driver) COMPREPLY=($(compgen -W "cgroupfs systemd" -- "$cur")); return ;;
    --max-concurrent-downloads) return ;;
  esac
  $split && return
  if [[ $prev == config && $cword -eq 2 ]]; then
    COMPREPLY=($(compgen -W "default dump" -- "$cur")); return
  fi
  local sub=""
  [[ $cword -eq 1 ]] && sub=config
  COMPREPLY=($(compgen -W "$sub --config --root --state-dir --address --log-level --log-format
    --max-concurrent-downloads --cgroup-driver --cni-conf-dir --version --help" -- "$cur"))
}

complete -F _berthd berthd
