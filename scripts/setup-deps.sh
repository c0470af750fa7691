#!/bin/bash
# Installs what Berth needs to build and test on Debian 12 (root; apt only).
set -euo pipefail

packages=(
  meson ninja-build g++ pkg-config python3 ccache
  libseccomp-dev libcap-dev libfmt-dev nlohmann-json3-dev libsystemd-dev
  libgtest-dev libgmock-dev
  busybox-static python3-pytest iproute2 jq util-linux procps time
  # cni/: libnl-route for berth-bridge; the reference plugins and nftables/iptables for tests
  libnl-3-dev libnl-route-3-dev containernetworking-plugins nftables iptables
  # cri/ and agent/: gRPC + protobuf, TOML/YAML config, registry client, layers, metadata
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libtomlplusplus-dev libyaml-cpp-dev libcurl4-openssl-dev libarchive-dev libzstd-dev
  libssl-dev libsqlite3-dev libmicrohttpd-dev nettle-dev
  # ctl/: berthctl's command line
  libcli11-dev
  # tests of cri/ and agent/: a local registry, image push, a Python gRPC client
  docker-registry skopeo apache2-utils python3-grpcio python3-protobuf python3-yaml containerd
  # tests/cri/test_registry_config.py: podman writes the auth.json berthd reads
  podman
  # tests/agent/test_status_sink_kube.py: etcd under a kube-apiserver built from source
  # (skipped without it), certificates made with openssl
  openssl
  # tests/agent/test_status_sink_etcd.py: a 3-member etcd cluster on loopback, read with etcdctl
  etcd-server etcd-client
)
# kubectl to look at that API server (any kubectl already installed will do)
command -v kubectl >/dev/null || packages+=(kubernetes-client)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(runc crun)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
