#!/usr/bin/env bash
# Installs the Debian packages the lab and the privileged tests need, if any is
# missing; with the argument "kind", also those of the offline kind cluster
# (test/kind). Needs root (the lab creates network and mount namespaces).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have ping || need+=(iputils-ping)
have arping || need+=(iputils-arping)
have iptables || need+=(iptables)
have nft || need+=(nftables)
have nsenter || need+=(util-linux)
have unshare || need+=(util-linux)
have tcpdump || need+=(tcpdump)
have openssl || need+=(openssl)
if [ "${1:-}" = kind ]; then
	[ -x /usr/sbin/dockerd ] || need+=(docker.io)
	have debootstrap || need+=(debootstrap)
	have gcc || need+=(gcc libc6-dev)
	file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || need+=(busybox-static)
	[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ] || need+=(libseccomp-dev)
	have file || need+=(file)
fi

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-packages: missing ${need[*]}; run as root (or install them) first" >&2
	exit 1
fi
echo "install-packages: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
