#!/usr/bin/env bash
# Installs Spindle with Helm into the offline kind cluster (cluster.sh up) the
# way a user does, and checks what a user would look at: every DaemonSet
# ready, the CNI binaries on every node, and a Deployment on a macvlan network
# whose pods hold, inside their network namespaces, distinct addresses of the
# SpiderIPPool, each recorded in a SpiderIPClaim that names the pod. Deleting
# the Deployment gives every address back. Ends with one "kind-smoke:" line.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEPS=$ROOT/test/lab/tools/build-deps.sh
CLUSTER=$HERE/cluster.sh
KIND_CLUSTER=${KIND_CLUSTER:-spindle}
REPLICAS=${REPLICAS:-6}
NS=spindle-smoke

log() { echo "kind-smoke: $*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}
k() { bash "$CLUSTER" exec "$(bash "$DEPS" path k8s)/kubectl" "$@"; }
helm_() { bash "$CLUSTER" exec "$(bash "$DEPS" path helm)/helm" "$@"; }
node_sh() { bash "$HERE/engine.sh" exec /usr/bin/docker exec "$1" sh -c "$2"; }

start=$SECONDS
bash "$DEPS" helm k8s >/dev/null
bash "$CLUSTER" up
mapfile -t images < <(bash "$HERE/images.sh" apps)
bash "$HERE/engine.sh" exec "$(bash "$DEPS" path kind)/kind" load docker-image --name "$KIND_CLUSTER" "${images[@]}" >&2

log "helm install (multus.install=true)"
k apply --server-side --force-conflicts -f "$ROOT/charts/spindle/crds/" >/dev/null
helm_ upgrade --install spindle "$ROOT/charts/spindle" -n kube-system --set multus.install=true --wait --timeout 5m >/dev/null
for ds in spindle-agent spindle-multus; do k -n kube-system rollout status "daemonset/$ds" --timeout 3m >&2; done
k -n kube-system rollout status deployment/spindle-controller --timeout 3m >&2

# The pool lives in the nodes' own network (kind's Docker network, a /16).
underlay=$(bash "$HERE/engine.sh" exec /usr/bin/docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' |
	tr ' ' '\n' | grep -E '^[0-9.]+/16$' | head -1)
[ -n "$underlay" ] || die "kind's Docker network has no IPv4 /16 subnet"
net16=$(cut -d. -f1-2 <<<"$underlay")
gateway=$net16.0.1

nodes=$(k get nodes -o jsonpath='{.items[*].metadata.name}')
for n in $nodes; do
	for b in spiderpool coordinator multus-shim; do
		node_sh "$n" "test -x /opt/cni/bin/$b" || die "node $n has no /opt/cni/bin/$b after helm install"
	done
done

k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: kind-smoke-v4
spec:
  subnet: $underlay
  ips: ["$net16.201.10-$net16.201.40"]
  gateway: $gateway
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan
  namespace: $NS
spec:
  config: |
    {"cniVersion": "1.0.0", "name": "kind-smoke-macvlan", "plugins": [
      {"type": "macvlan", "master": "eth0", "mode": "bridge",
       "ipam": {"type": "spiderpool", "default_ipv4_ippool": ["kind-smoke-v4"]}},
      {"type": "coordinator"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
  namespace: $NS
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: smoke}}
  template:
    metadata:
      labels: {app: smoke}
      annotations: {k8s.v1.cni.cncf.io/networks: macvlan}
    spec:
      containers:
        - {name: pause, image: "registry.k8s.io/pause:3.10.2", imagePullPolicy: Never}
YAML
k -n "$NS" rollout status deployment/smoke --timeout 3m >&2

# The truth inside each pod's network namespace, found through the node's
# container runtime.
seen=""
count=0
while read -r pod uid node; do
	addr=$(node_sh "$node" "id=\$(crictl pods -q --namespace $NS --name $pod --state ready | head -1)
		ns=\$(crictl inspectp \$id | grep -o '/var/run/netns/[a-z0-9-]*' | head -1)
		nsenter --net=\$ns ip -4 -o addr show dev net1 | awk '{print \$4}'")
	addr=${addr%/*}
	case $addr in "$net16".201.*) ;; *) die "pod $NS/$pod on $node has net1 address '$addr', not one of pool kind-smoke-v4" ;; esac
	echo "$seen" | grep -qw "$addr" && die "address $addr is configured in two pods"
	seen="$seen $addr"
	claim_uid=$(k get spideripclaim "$addr" -o jsonpath='{.spec.podUID}')
	[ "$claim_uid" = "$uid" ] || die "claim $addr names pod uid '$claim_uid', pod $NS/$pod is $uid"
	log "pod $pod on $node: net1 $addr (claim names the pod)"
	count=$((count + 1))
done < <(k -n "$NS" get pods -l app=smoke -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName}{"\n"}{end}')
[ "$count" = "$REPLICAS" ] || die "$count pods checked, want $REPLICAS"

k -n "$NS" delete deployment smoke --wait >/dev/null
for _ in $(seq 1 60); do
	left=$(k get spideripclaims -o jsonpath='{range .items[?(@.spec.pool=="kind-smoke-v4")]}{.metadata.name} {end}')
	[ -z "$left" ] && break
	sleep 2
done
[ -z "$left" ] || die "claims left after the pods were deleted: $left"
k delete namespace "$NS" --wait >/dev/null
k delete spiderippool kind-smoke-v4 --wait >/dev/null
echo "kind-smoke: nodes=$(wc -w <<<"$nodes") pods=$count distinct_addresses=$(wc -w <<<"$seen") claims_left=0 seconds=$((SECONDS - start))"
