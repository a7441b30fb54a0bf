#!/usr/bin/env bash
# Installs Spindle with Helm into the offline kind cluster (cluster.sh up) the
# way a user does, upgrades it, and checks what a user would look at:
#   1. the chart as of KIND_UPGRADE_FROM (a commit) is installed with Multus;
#      every DaemonSet is ready and the CNI binaries are on every node;
#   2. a Deployment on a macvlan network: its pods hold, inside their network
#      namespaces, distinct addresses of the SpiderIPPool, each recorded in a
#      SpiderIPClaim that names the pod;
#   3. `helm upgrade` to this checkout's chart and a restart of every Spindle
#      and Multus pod: the running pods keep their addresses, `helm test`
#      passes, and new replicas get addresses no running pod has;
#   4. deleting the Deployment gives every address back; `helm uninstall`
#      leaves no Spindle pod, no webhook configuration, and no Multus
#      configuration and no binary the chart installed on the nodes.
#
#   smoke.sh            # all four steps
#   smoke.sh upgrade    # steps 1-3 and the release of the Deployment's
#                       # addresses: this checkout's chart stays installed
#   smoke.sh uninstall  # step 4's helm uninstall and its checks
#
# `make test` runs the e2e suite (e2e.sh) between the two phases, on the same
# cluster. The upgrade phase ends with one "kind-smoke:" line, the uninstall
# phase with one "kind-uninstall:" line.
set -euo pipefail

# shellcheck source=test/kind/lib.sh
source "$(dirname "$0")/lib.sh"
REPLICAS=${REPLICAS:-6}
EXTRA=3
# The chart before the kind cluster existed: the version users run today.
KIND_UPGRADE_FROM=${KIND_UPGRADE_FROM:-97a7e434a8565eeba7a09e1fdd71f2807f3b82e0}
NS=spindle-smoke

log() { echo "kind-smoke: $*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}
# pod_addrs: "POD ADDRESS" for every pod of the Deployment, each address read
# inside the pod's network namespace (through the node's container runtime)
# and checked: in the pool, on no other pod, its claim naming the pod.
pod_addrs() {
	local pod uid node addr seen="" claim_uid
	while read -r pod uid node; do
		addr=$(node_sh "$node" "id=\$(crictl pods -q --namespace $NS --name $pod --state ready | head -1)
			ns=\$(crictl inspectp \$id | grep -o '/var/run/netns/[a-z0-9-]*' | head -1)
			nsenter --net=\$ns ip -4 -o addr show dev net1 | awk '{print \$4}'")
		addr=${addr%/*}
		case $addr in "$net16".201.*) ;; *) die "pod $NS/$pod on $node has net1 address '$addr', not one of pool kind-smoke-v4" ;; esac
		grep -qw "$addr" <<<"$seen" && die "address $addr is configured in two pods"
		seen="$seen $addr"
		claim_uid=$(k get spideripclaim "$addr" -o jsonpath='{.spec.podUID}')
		[ "$claim_uid" = "$uid" ] || die "claim $addr names pod uid '$claim_uid', pod $NS/$pod is $uid"
		log "pod $pod on $node: net1 $addr (claim names the pod)"
		echo "$pod $addr"
	done < <(k -n "$NS" get pods -l app=smoke --field-selector=status.phase=Running \
		-o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName}{"\n"}{end}')
}

PHASE=${1:-all}
case $PHASE in all | upgrade | uninstall) ;; *) die "unknown phase '$PHASE': use upgrade, uninstall or nothing (both)" ;; esac
start=$SECONDS
bash "$DEPS" helm k8s >/dev/null
bash "$CLUSTER" up
nodes=$(k get nodes -o jsonpath='{.items[*].metadata.name}')

# uninstall: step 4's helm uninstall and what must be gone after it.
uninstall() {
	local pods hooks conf bins n b
	helm_ status spindle -n kube-system >/dev/null 2>&1 || die "no release spindle in kube-system to uninstall: run the upgrade phase first (smoke.sh upgrade)"
	# The suite's last spec may have restarted a node seconds ago. An agent
	# stopped while its pod's init container still copies the plugins never
	# runs, so nothing would remove them: uninstall the release once every
	# pod of it runs again, as users do.
	rollout
	helm_ uninstall spindle -n kube-system --wait --timeout 3m >/dev/null
	for _ in $(seq 1 60); do
		pods=$(k -n kube-system get pods -o name | grep -E 'spindle-(agent|controller|multus)' || true)
		[ -z "$pods" ] && break
		sleep 2
	done
	[ -z "$pods" ] || die "pods left after helm uninstall: $pods"
	hooks=$(k get validatingwebhookconfigurations,mutatingwebhookconfigurations -o name | grep spindle || true)
	[ -z "$hooks" ] || die "webhook configurations left after helm uninstall: $hooks"
	# Multus removes its configuration when it stops: a node keeps no default
	# network that points at a daemon that is gone (new pods would fail there).
	for n in $nodes; do
		conf=$(node_sh "$n" "ls /etc/cni/net.d")
		grep -q multus <<<"$conf" && die "node $n keeps Multus's configuration after helm uninstall: $conf"
		# The agents remove the binaries the chart copied to the node as they
		# stop for good.
		bins=$(node_sh "$n" "ls /opt/cni/bin")
		for b in spiderpool coordinator multus-shim passthru; do
			grep -qx "$b" <<<"$bins" && die "node $n keeps /opt/cni/bin/$b after helm uninstall"
		done
	done
	echo "kind-uninstall: nodes=$(wc -w <<<"$nodes") spindle_pods_left=0 webhooks_left=0 multus_configs_left=0 binaries_left=0 seconds=$((SECONDS - start))"
}
if [ "$PHASE" = uninstall ]; then
	uninstall
	exit 0
fi

tag=$(load_app_images)

# 1. The previous chart, as users installed it.
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git -C "$ROOT" archive "$KIND_UPGRADE_FROM" charts/spindle | tar -x -C "$old"
log "helm install of the chart as of ${KIND_UPGRADE_FROM:0:12} (multus.install=true)"
# The image is this checkout's (one image is built), so the API it reads is
# this checkout's CRDs: the previous chart's objects are valid under them
# (they add fields; the SpiderEndpoint lost its status subresource, which the
# agent copes with either way).
CRD_CHART=$ROOT/charts/spindle install_chart "$old/charts/spindle" "$tag"

for n in $nodes; do
	for b in spiderpool coordinator multus-shim; do
		node_sh "$n" "test -x /opt/cni/bin/$b" || die "node $n has no /opt/cni/bin/$b after helm install"
	done
done

# 2. A Deployment on the nodes' own network (kind's Docker network, a /16).
underlay=$(bash "$HERE/engine.sh" exec /usr/bin/docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' |
	tr ' ' '\n' | grep -E '^[0-9.]+/16$' | head -1)
[ -n "$underlay" ] || die "kind's Docker network has no IPv4 /16 subnet"
net16=$(cut -d. -f1-2 <<<"$underlay")

k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: kind-smoke-v4
spec:
  subnet: $underlay
  ips: ["$net16.201.10-$net16.201.40"]
  gateway: $net16.0.1
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
before=$(pod_addrs)
[ "$(wc -l <<<"$before")" = "$REPLICAS" ] || die "$(wc -l <<<"$before") pods checked, want $REPLICAS"

# 3. Upgrade to this checkout's chart; every Spindle and Multus pod restarts.
log "helm upgrade to this checkout's chart (and IPv6 on, as the e2e suite runs it), then a restart of every Spindle and Multus pod"
install_chart "$ROOT/charts/spindle" "$tag" --set ipam.enableIPv6=true
k -n kube-system rollout restart daemonset/spindle-agent daemonset/spindle-multus deployment/spindle-controller >/dev/null
rollout
after=$(pod_addrs)
[ "$after" = "$before" ] || die "addresses changed across the upgrade: before
$before
after
$after"
kept=$(wc -l <<<"$after")
# The chart's own check, as a user runs it after an upgrade: agents, webhook,
# and an address of the smoke pool for a pod of its own.
log "helm test (agents, webhook, an address of kind-smoke-v4 on $NS/macvlan)"
helm_ upgrade spindle "$ROOT/charts/spindle" -n kube-system --reuse-values \
	--set tests.pool.name=kind-smoke-v4 --set tests.pool.network="$NS/macvlan" --wait --timeout 5m >/dev/null
# The test pod is deleted once it passes and kept when it fails (helm's
# --logs would fail on the deleted pod).
if ! helm_ test spindle -n kube-system --timeout 5m >/dev/null; then
	k -n kube-system logs spindle-selftest >&2 || true
	die "helm test failed (its pod's log is above)"
fi
log "helm test passed"
k -n "$NS" scale deployment/smoke --replicas=$((REPLICAS + EXTRA)) >/dev/null
k -n "$NS" rollout status deployment/smoke --timeout 3m >&2
all=$(pod_addrs)
total=$(wc -l <<<"$all")
[ "$total" = $((REPLICAS + EXTRA)) ] || die "$total pods checked after scaling up, want $((REPLICAS + EXTRA))"
distinct=$(awk '{print $2}' <<<"$all" | sort -u | wc -l)

# 4. Every address back, then the release removed.
k -n "$NS" delete deployment smoke --wait >/dev/null
left=""
for _ in $(seq 1 60); do
	left=$(k get spideripclaims -o jsonpath='{range .items[?(@.spec.pool=="kind-smoke-v4")]}{.metadata.name} {end}')
	[ -z "$left" ] && break
	sleep 2
done
[ -z "$left" ] || die "claims left after the pods were deleted: $left"
k delete namespace "$NS" --wait >/dev/null
k delete spiderippool kind-smoke-v4 --wait >/dev/null
echo "kind-smoke: nodes=$(wc -w <<<"$nodes") pods=$total distinct_addresses=$distinct kept_after_upgrade=$kept claims_left=0 seconds=$((SECONDS - start))"
if [ "$PHASE" = all ]; then
	start=$SECONDS
	uninstall
fi
