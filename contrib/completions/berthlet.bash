# bash completion for berthlet(8), the Berth static pod agent (flags: agent/berthlet.cpp).
# Installed as <datadir>/bash-completion/completions/berthlet.
# Without the bash-completion package, `--flag=value' words are not split: use `--flag value'.

_berthlet() {
  local cur prev words cword split=false
  if declare -F _init_completion >/dev/null; then
    _init_completion -s || return
  else
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  fi
  case $prev in
    --config) compopt -o filenames; COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --pod-manifest-path | --pod-logs-dir | --root-dir) compopt -o filenames; COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --container-runtime-endpoint)
      # Colons break words unless bash-completion's helper reassembles them.
      COMPREPLY=($(compgen -W "unix:///run/berthd/berthd.sock unix:///run/containerd/containerd.sock" -- "$cur"))
      declare -F __ltrim_colon_completions >/dev/null && __ltrim_colon_completions "$cur"
      return ;;
    --cgroup-driver) COMPREPLY=($(compgen -W "cgroupfs systemd" -- "$cur")); return ;;
    --file-check-frequency | --runtime-request-timeout | --hostname-override | --node-name | --address | \
      --read-only-port | --cgroup-root) return ;;
  esac
  $split && return
  COMPREPLY=($(compgen -W "--config --pod-manifest-path --file-check-frequency --container-runtime-endpoint
    --runtime-request-timeout --hostname-override --node-name --address --read-only-port --pod-logs-dir --root-dir
    --cgroup-root --cgroup-driver --v --debug --version --help" -- "$cur"))
}

complete -F _berthlet berthlet
