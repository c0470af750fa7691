# bash completion for berth-cni(8), the CNI client (options: cni/berth-cni.cpp).
# Installed as <datadir>/bash-completion/completions/berth-cni.
# Without the bash-completion package, `--flag=value' words are not split: use `--flag value'.

_berth_cni() {
  local cur prev words cword split=false
  if declare -F _init_completion >/dev/null; then
    _init_completion -s || return
  else
    words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  fi
  case $prev in
    --conf-dir | --bin-dir | --cache-dir) compopt -o filenames; COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --cid | --ifname | --args | --cap-args | --timeout) return ;;
  esac
  $split && return
  # Options come before the command (getopt stops at the first operand).
  local i command="" nargs=0 conf_dir=${NETCONFPATH:-/etc/cni/net.d}
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      --conf-dir) conf_dir=${words[i + 1]}; ((i++)) ;;
      --conf-dir=*) conf_dir=${words[i]#*=} ;;
      --bin-dir | --cache-dir | --cid | --ifname | --args | --cap-args | --timeout) ((i++)) ;;
      -*) ;;
      *) [[ -z $command ]] && command=${words[i]} || ((nargs++)) ;;
    esac
  done
  if [[ -z $command ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--conf-dir --bin-dir --cache-dir --cid --ifname --args --cap-args --timeout
        --help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "add del check status validate gc version list netns-add netns-del" -- "$cur"))
    fi
    return
  fi
  case $command:$nargs in
    add:0 | del:0 | check:0 | status:0 | validate:0 | gc:0)
      local nets=$("${words[0]}" --conf-dir "$conf_dir" list 2>/dev/null | cut -d' ' -f1)
      COMPREPLY=($(compgen -W "$nets" -- "$cur")) ;;
    add:1 | del:1 | check:1 | netns-del:0) compopt -o filenames; COMPREPLY=($(compgen -f -- "$cur")) ;;
    netns-add:0) compopt -o filenames; COMPREPLY=($(compgen -d -- "$cur")) ;;
  esac
}

complete -F _berth_cni berth-cni
