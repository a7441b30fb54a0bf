#!/usr/bin/env bash
# Spindle IPAM demo on the lab: underlay pools, a macvlan network with the
# spiderpool IPAM plugin and the coordinator, a multi-NIC Deployment and a
# StatefulSet with fixed addresses. Re-runnable; leaves everything in place in
# namespace spindle-demo (see the end of the output for how to clean up).
#
#   make demo            # = make lab-up && bash test/demo/run.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
demo=test/demo
ns=spindle-demo

if [[ ! -f _lab/env ]] || ! bin/lab status >/dev/null 2>&1; then
	echo "demo: the lab is not running; start it with: make lab-up" >&2
	exit 1
fi
# shellcheck disable=SC1091
source _lab/env
if [[ $LAB_UNDERLAY_V4 != 172.30.0.0/16 || $LAB_UNDERLAY_V6 != fd30:172:30::/64 || $LAB_UNDERLAY_IF != ul0 ]]; then
	echo "demo: the manifests in $demo are written for the default lab underlay (ul0, 172.30.0.0/16, fd30:172:30::/64);" >&2
	echo "      this lab has $LAB_UNDERLAY_IF, $LAB_UNDERLAY_V4, $LAB_UNDERLAY_V6: adapt $demo/pools.yaml and $demo/network.yaml" >&2
	exit 1
fi
export KUBECONFIG=$LAB_KUBECONFIG
kubectl=${E2E_KUBECTL:-$(bash test/lab/tools/build-deps.sh path k8s)/kubectl}
k() { "$kubectl" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# run CMD...: print the command (k as kubectl), then run it.
run() {
	local shown=("$@")
	[[ ${shown[0]} == k ]] && shown[0]=kubectl
	printf '$ %s\n' "${shown[*]}"
	"$@"
}

# show_pod POD: the pod's addresses per interface, as the pod sees them and as
# Multus reports them.
show_pod() {
	local pod=$1
	printf -- '--- %s (node %s)\n' "$pod" "$(k -n "$ns" get pod "$pod" -o jsonpath='{.spec.nodeName}')"
	run bin/lab exec "$ns/$pod" -- ip -br addr
	echo "network-status:"
	if ! command -v python3 >/dev/null; then
		k -n "$ns" get pod "$pod" -o go-template='{{index .metadata.annotations "k8s.v1.cni.cncf.io/network-status"}}{{"\n"}}'
		return
	fi
	k -n "$ns" get pod "$pod" -o go-template='{{index .metadata.annotations "k8s.v1.cni.cncf.io/network-status"}}' |
		python3 -c 'import json,sys
for s in json.load(sys.stdin):
    print("  %-5s %-28s %s%s" % (s["interface"], s["name"], " ".join(s.get("ips", [])), "  (default)" if s.get("default") else ""))'
}

# net1_addrs POD: the pod's global net1 addresses, as configured in the pod.
net1_addrs() {
	bin/lab exec "$ns/$1" -- ip -br addr show dev net1 | awk '{for (i = 3; i <= NF; i++) if ($i !~ /^fe80:/) printf "%s%s", (n++ ? " " : ""), $i} END {print ""}'
}

step "Pools: an IPv4 and an IPv6 slice of the lab underlay"
run k apply -f "$demo/pools.yaml"

step "Network: macvlan on ul0 with spiderpool IPAM + coordinator (NetworkAttachmentDefinition spindle-demo/underlay)"
run k apply -f "$demo/network.yaml"

step "Workloads: Deployment web (eth0 + net1 via ipam.spidernet.io/ippools) and StatefulSet db (fixed addresses)"
run k apply -f "$demo/workloads.yaml"
run k -n "$ns" rollout status deployment/web --timeout=120s
run k -n "$ns" rollout status statefulset/db --timeout=120s

step "Pods"
run k -n "$ns" get pods -o wide
for pod in $(k -n "$ns" get pods -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort); do
	show_pod "$pod"
done

step "Pools and endpoints"
run k get sp -o wide demo-underlay-v4 demo-underlay-v6
run k -n "$ns" get se
run k get spideripclaims -l 'ipam.spidernet.io/pool in (demo-underlay-v4,demo-underlay-v6)'

step "Routing in a pod (coordinator): one default route, via eth0; net1 has its own table"
web=$(k -n "$ns" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
run bin/lab exec "$ns/$web" -- ip route
run bin/lab exec "$ns/$web" -- ip -6 route show default
run bin/lab exec "$ns/$web" -- ip rule
echo "net1 reaches the underlay gateway:"
run bin/lab exec "$ns/$web" -- ping -c 1 -W 2 -I net1 "$LAB_GATEWAY_V4"

step "StatefulSet: delete db-0, its replacement keeps the addresses"
old_uid=$(k -n "$ns" get pod db-0 -o jsonpath='{.metadata.uid}')
before=$(net1_addrs db-0)
echo "db-0 (uid $old_uid) net1: $before"
run k -n "$ns" delete pod db-0 --wait=true
for _ in $(seq 1 120); do
	uid=$(k -n "$ns" get pod db-0 -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
	[[ -n $uid && $uid != "$old_uid" ]] && break
	sleep 0.5
done
run k -n "$ns" wait --for=condition=Ready pod/db-0 --timeout=120s
after=$(net1_addrs db-0)
echo "db-0 (uid $(k -n "$ns" get pod db-0 -o jsonpath='{.metadata.uid}')) net1: $after"
show_pod db-0
if [[ $before == "$after" ]]; then
	echo "same addresses after re-creation: yes"
else
	echo "same addresses after re-creation: NO ($before -> $after)" >&2
	exit 1
fi

step "Done. The demo objects stay in namespace $ns for you to explore, e.g."
cat <<EOF
  export KUBECONFIG=$root/_lab/kubeconfig; alias kubectl=$kubectl
  kubectl -n $ns get pods -o wide; kubectl get sp -o wide; kubectl -n $ns get se
  bin/lab exec $ns/db-0 -- ip -br addr
Clean up:
  kubectl delete namespace $ns --wait && kubectl delete sp demo-underlay-v4 demo-underlay-v6
EOF
