#!/usr/bin/env bash
# install-deps.sh: installs tally's build and test dependencies with apt on
# Debian 12, as root, skipping what is already there.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git
  liburing-dev libdpdk-dev libxxhash-dev libcjson-dev libcurl4-openssl-dev libssl-dev
  libcmocka-dev libmicrohttpd-dev libarchive-dev zlib1g-dev libzstd-dev libpcap-dev
  clang libclang-rt-14-dev clang-format
  etcd-server prometheus
  iproute2 zstd openssl curl gnuplot-nox procps util-linux python3
)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: everything is installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${missing[*]}; run as root" >&2
    exit 2
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# The etcd and prometheus packages start system services; tally's tests run
# their own instances on other ports and never use these.
for svc in etcd prometheus prometheus-node-exporter; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
