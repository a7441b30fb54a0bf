#!/usr/bin/env bash
# The offline kind cluster in the kind engine (test/kind/engine.sh).
#
#   cluster.sh up        build the node image if needed, create the cluster
#   cluster.sh down      delete the cluster, restore the machine's settings
#   cluster.sh exec CMD  run CMD where the cluster's API server is reachable,
#                        with KUBECONFIG set
#
# `up` also writes $STATE/env: the facts the e2e suite (test/e2e/framework,
# Kind) needs to reach the nodes, the pods' network namespaces and the
# underlay (the engine's "kind" network, every node's eth0).
#
# A privileged kind node's kubelet writes machine-wide sysctls, and kind's
# /lib/modules mount creates that folder on the machine: `up` saves both and
# `down` puts them back as they were.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${SPINDLE_CACHE:-$HOME/.cache/spindle}
ENGINE=$HERE/engine.sh
KIND_CLUSTER=${KIND_CLUSTER:-spindle}
KIND_CONFIG=${KIND_CONFIG:-$HERE/offline.yaml}
STATE=$ROOT/_out/kind
KUBECONFIG_FILE=$STATE/kubeconfig
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

log() { echo "kind-cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

kind_() {
	local bin
	bin=$(bash "$ROOT/test/lab/tools/build-deps.sh" path kind)/kind
	bash "$ENGINE" exec "$bin" "$@"
}

save_host() {
	mkdir -p "$STATE"
	[ -f "$STATE/host-settings" ] && return 0
	{
		local s
		for s in $SYSCTLS; do echo "sysctl $s $(sysctl -n "$s")"; done
		[ -e /lib/modules ] || echo "remove /lib/modules"
	} >"$STATE/host-settings"
}

restore_host() {
	[ -f "$STATE/host-settings" ] || return 0
	local what a b
	while read -r what a b; do
		case $what in
		sysctl) sysctl -qw "$a=$b" ;;
		remove) rmdir "$a" 2>/dev/null || log "left $a: not empty" ;;
		esac
	done <"$STATE/host-settings"
	rm -f "$STATE/host-settings"
}

up() {
	local image
	image=$(bash "$HERE/images.sh")
	save_host
	if kind_ get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
		log "reusing cluster $KIND_CLUSTER"
	else
		local start=$SECONDS
		kind_ create cluster --name "$KIND_CLUSTER" --image "$image" --config "$KIND_CONFIG" --retain >&2 || {
			restore_host
			die "kind create cluster failed (node logs: cluster.sh exec kind export logs)"
		}
		log "cluster $KIND_CLUSTER up in $((SECONDS - start)) s"
	fi
	kind_ get kubeconfig --name "$KIND_CLUSTER" >"$KUBECONFIG_FILE"
	kubectl_ apply -f "$HERE/manifests/node-network.yaml" >&2
	log "waiting for every node to be Ready (the default pod network)"
	kubectl_ wait --for=condition=Ready nodes --all --timeout=120s >&2
	write_env
}

# write_env writes $STATE/env (KEY=value lines): the API server, the engine,
# the nodes with their underlay addresses and pod CIDRs, the underlay (the
# "kind" network: subnets, gateways on the engine's bridge) and the service
# CIDR.
write_env() {
	local id v4 v6 gw4 gw6 svc i=0 name addrs cidrs a
	# The network's ID, then its subnets as it declares them. Its IPAM
	# config names a gateway only once the engine has restarted with the
	# network, so the gateways are read from the bridge itself.
	read -r id addrs < <(bash "$ENGINE" exec /usr/bin/docker network inspect kind -f '{{.Id}} {{range .IPAM.Config}}{{.Subnet}} {{end}}')
	for a in $addrs; do
		case $a in *:*) v6=$a ;; *) v4=$a ;; esac
	done
	for a in $(bash "$ENGINE" exec ip -o addr show dev "br-${id:0:12}" scope global | awk '{print $4}'); do
		case $a in *:*) gw6=${a%/*} ;; *) gw4=${a%/*} ;; esac
	done
	[[ -n ${v4:-} && -n ${v6:-} && -n ${gw4:-} && -n ${gw6:-} ]] ||
		die "kind's Docker network (bridge br-${id:0:12}) lacks an IPv4 or IPv6 subnet or gateway: subnets '${v4:-}' '${v6:-}', bridge addresses '${gw4:-}' '${gw6:-}'"
	svc=$(kubectl_ -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' |
		awk '$1 == "serviceSubnet:" {print $2}' | cut -d, -f1)
	{
		echo "# Written by test/kind/cluster.sh up."
		bash "$ENGINE" env
		echo "KIND_APISERVER=$(awk '$1 == "server:" {print $2; exit}' "$KUBECONFIG_FILE")"
		echo "KIND_NODES='$(kubectl_ get nodes -o jsonpath='{.items[*].metadata.name}')'"
		echo "KIND_UNDERLAY_IF=eth0"
		echo "KIND_GATEWAY_IF=br-${id:0:12}"
		echo "KIND_UNDERLAY_V4=$v4"
		echo "KIND_UNDERLAY_V6=$v6"
		echo "KIND_GATEWAY_V4=$gw4"
		echo "KIND_GATEWAY_V6=$gw6"
		echo "KIND_SERVICE_CIDR=$svc"
		while read -r name addrs cidrs; do
			i=$((i + 1))
			echo "KIND_NODE_${i}_NAME=$name"
			for a in ${addrs//,/ }; do
				case $a in *:*) echo "KIND_NODE_${i}_UNDERLAY_V6=$a" ;; *) echo "KIND_NODE_${i}_UNDERLAY_V4=$a" ;; esac
			done
			for a in ${cidrs//,/ }; do
				case $a in *:*) echo "KIND_NODE_${i}_POD_CIDR_V6=$a" ;; *) echo "KIND_NODE_${i}_POD_CIDR=$a" ;; esac
			done
		done < <(kubectl_ get nodes -o jsonpath='{range .items[*]}{.metadata.name} {range .status.addresses[?(@.type=="InternalIP")]}{.address},{end} {range .spec.podCIDRs[*]}{@},{end}{"\n"}{end}')
	} >"$STATE/env"
	log "wrote $STATE/env"
}

kubectl_() {
	local bin
	bin=$(bash "$ROOT/test/lab/tools/build-deps.sh" path k8s)/kubectl
	bash "$ENGINE" exec "$bin" --kubeconfig "$KUBECONFIG_FILE" "$@"
}

down() {
	if bash "$ENGINE" status; then
		kind_ delete cluster --name "$KIND_CLUSTER" >&2 || true
	fi
	restore_host
	rm -f "$STATE/env"
}

case ${1:-} in
up) up ;;
env) write_env ;;
down) down ;;
exec)
	shift
	bash "$ENGINE" exec env KUBECONFIG="$KUBECONFIG_FILE" "$@"
	;;
*) die "usage: cluster.sh up|down|exec CMD..." ;;
esac
