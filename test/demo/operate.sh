#!/usr/bin/env bash
# Day-to-day operation and troubleshooting of Spindle on the lab: the runs
# behind docs/operations.md and docs/troubleshooting.md. Each section sets up
# a situation an operator meets (a pool running full, an agent down, a leaked
# address, a drifted counter, a webhook with the wrong CA), shows what the
# operator sees and the commands that fix it, and checks that the fix
# worked: the script exits non-zero when an outcome is not the documented one.
#
#   make demo-ops      # = make lab-up && bash test/demo/operate.sh
#
# It uses namespace spindle-ops and pool ops-v4 (underlay block 172.30.240.0/24)
# and removes them at the end; it stops and restarts the lab's daemons.
set -euo pipefail

cd "$(dirname "$0")/../.."
ns=spindle-ops
pool=ops-v4

if [[ ! -f _lab/env ]] || ! bin/lab status >/dev/null 2>&1; then
	echo "operate: the lab is not running; start it with: make lab-up" >&2
	exit 1
fi
# shellcheck disable=SC1091
source _lab/env
if [[ $LAB_UNDERLAY_V4 != 172.30.0.0/16 || $LAB_UNDERLAY_IF != ul0 ]]; then
	echo "operate: written for the default lab underlay (ul0, 172.30.0.0/16); this lab has $LAB_UNDERLAY_IF, $LAB_UNDERLAY_V4" >&2
	exit 1
fi
export KUBECONFIG=$LAB_KUBECONFIG
kubectl=${E2E_KUBECTL:-$(bash test/lab/tools/build-deps.sh path k8s)/kubectl}
KUBECTL_BIN=$kubectl
k() { "$kubectl" "$@"; }
ks() { bin/kubectl-spindle "$@"; }

# run CMD...: print the command as an operator types it, then run it. A
# command expected to fail is written `run ! CMD...`: its exit status is
# printed and the script goes on; a command expected to succeed that fails
# stops the script.
run() {
	local expect_fail=false
	if [[ $1 == ! ]]; then
		expect_fail=true
		shift
	fi
	local shown=("$@")
	case ${shown[0]} in
	k) shown[0]=kubectl ;;
	ks) shown[0]="kubectl spindle" ;;
	esac
	local i
	for i in "${!shown[@]}"; do
		[[ $i -eq 0 || ${shown[i]} =~ ^[A-Za-z0-9_./:=,@-]*$ ]] || shown[i]="'${shown[i]}'"
	done
	printf '$ %s\n' "${shown[*]}"
	local rc=0
	"$@" || rc=$?
	if $expect_fail; then
		printf '(exit status %d)\n' "$rc"
		[[ $rc -ne 0 ]] || fail "expected '${shown[*]}' to fail"
	elif [[ $rc -ne 0 ]]; then
		fail "'${shown[*]}' failed with exit status $rc"
	fi
}
# runsh 'PIPELINE': print a shell pipeline as typed, then run it.
runsh() {
	printf '$ %s\n' "$1"
	eval "$1" || fail "'$1' failed"
}
kubectl() { "$KUBECTL_BIN" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() {
	echo "operate: FAILED: $*" >&2
	exit 1
}
# until SECONDS CMD...: wait until CMD succeeds.
until_ok() {
	local t=$1
	shift
	for _ in $(seq 1 $((t * 2))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	fail "timed out after ${t}s waiting for: $*"
}
pod_phase_is() { [[ $(k -n "$ns" get pod "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
web_pods() { k -n "$ns" get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort; }
pending_web_pod() {
	k -n "$ns" get pods -l app=web -o jsonpath='{range .items[?(@.status.phase=="Pending")]}{.metadata.name}{"\n"}{end}' | head -1
}
all_web_running() {
	local want=$1
	[[ $(k -n "$ns" get pods -l app=web -o jsonpath='{range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}' | grep -c .) -eq $want ]]
}
# events POD: print and run the command that lists the pod's events, oldest
# first, without the age column (the age differs run to run).
events() {
	runsh "kubectl -n $ns get events --field-selector involvedObject.name=$1 --sort-by=.metadata.creationTimestamp -o custom-columns=TYPE:.type,REASON:.reason,FROM:.reportingComponent,SOURCE:.source.component,MESSAGE:.message"
}
cleanup() {
	k delete namespace "$ns" --ignore-not-found --wait=true >/dev/null 2>&1 || true
	k delete sp "$pool" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap 'bin/lab daemons restart >/dev/null 2>&1 || true; cleanup' ERR

cleanup
step "Setup: a pool of three underlay addresses, a macvlan network using it, a Deployment of two"
cat <<EOF | k apply -f -
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: $pool
spec:
  subnet: 172.30.0.0/16
  ips:
  - 172.30.240.10-172.30.240.12
  gateway: 172.30.0.1
---
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: underlay
  namespace: $ns
spec:
  config: |-
    {"cniVersion": "1.0.0", "name": "ops-underlay", "plugins": [
      {"type": "macvlan", "master": "ul0", "mode": "bridge", "ipam": {"type": "spiderpool"}},
      {"type": "coordinator"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $ns
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        k8s.v1.cni.cncf.io/networks: underlay
        ipam.spidernet.io/ippool: '{"interface": "net1", "ipv4": ["$pool"]}'
    spec:
      containers:
      - {name: web, image: nginx}
      terminationGracePeriodSeconds: 1
EOF
run k -n "$ns" rollout status deployment/web --timeout=120s

step "operations: capacity and holders"
run ks pools
run k get sp "$pool"
run ks ips --pool "$pool"
run k -n "$ns" get spiderendpoints
run k get spideripclaims -l "ipam.spidernet.io/pool=$pool"
echo "The agent logs one line per ADD and DEL (lab: _lab/logs/<node>-agent.log):"
for f in _lab/logs/*agent*.log; do
	grep -h "\"ADD\"\|msg=ADD\| ADD " "$f" | grep "$ns" || true
done | tail -2

step "troubleshooting: a pod stuck in ContainerCreating because its pool is full"
run k -n "$ns" scale deployment/web --replicas=4
until_ok 60 bash -c "[[ \$($kubectl -n $ns get pods -l app=web -o name | wc -l) -eq 4 ]]"
sleep 5
run k -n "$ns" get pods -l app=web
stuck=$(pending_web_pod)
[[ -n $stuck ]] || fail "no pod of web is Pending with a full pool"
until_ok 30 bash -c "$kubectl -n $ns get events --field-selector involvedObject.name=$stuck,reason=AllocationFailed -o name | grep -q ."
events "$stuck"
run ! ks why "$ns/$stuck"
run ks pools --namespace "$ns"
echo "The pool records that it turned a pod away:"
until_ok 30 bash -c "$kubectl get events --field-selector involvedObject.kind=SpiderIPPool,involvedObject.name=$pool,reason=PoolExhausted -o name | grep -q ."
runsh "kubectl get events --field-selector involvedObject.uid=$(k get sp "$pool" -o jsonpath={.metadata.uid}),reason=PoolExhausted -o custom-columns=TYPE:.type,REASON:.reason,FROM:.reportingComponent,MESSAGE:.message"

step "operations: grow the pool; the stuck pods start"
run k patch sp "$pool" --type=json -p '[{"op": "add", "path": "/spec/ips/-", "value": "172.30.240.13-172.30.240.14"}]'
until_ok 120 all_web_running 4
run k -n "$ns" get pods -l app=web
run k get sp "$pool"

step "operations: shrinking a pool under addresses in use is refused"
used=$(k get spideripclaims -l "ipam.spidernet.io/pool=$pool" -o jsonpath='{.items[0].spec.address}')
run ! k patch sp "$pool" --type=merge -p "{\"spec\":{\"ips\":[\"172.30.240.200\"]}}"
echo "(the pool's addresses in use include $used)"

step "operations: retire a pool: disable it, new pods are refused, running ones keep their addresses"
run k patch sp "$pool" --type=merge -p '{"spec":{"disable":true}}'
run k -n "$ns" scale deployment/web --replicas=5
until_ok 60 bash -c "[[ -n \$($kubectl -n $ns get pods -l app=web -o jsonpath='{range .items[?(@.status.phase==\"Pending\")]}{.metadata.name}{end}') ]]"
stuck=$(pending_web_pod)
until_ok 30 bash -c "$kubectl -n $ns get events --field-selector involvedObject.name=$stuck,reason=AllocationFailed -o name | grep -q ."
run ! ks why "$ns/$stuck"
run k patch sp "$pool" --type=merge -p '{"spec":{"disable":false}}'
until_ok 120 all_web_running 5
run k -n "$ns" scale deployment/web --replicas=2
until_ok 60 bash -c "[[ \$($kubectl -n $ns get pods -l app=web -o name | wc -l) -eq 2 ]]"
until_ok 60 bash -c "[[ \$($kubectl get spideripclaims -l ipam.spidernet.io/pool=$pool -o name | wc -l) -eq 2 ]]"

step "operations: the consistency check, clean"
run ks check

step "troubleshooting: a pod stuck in ContainerCreating because the node's agent is down"
run bin/lab daemons stop
run k -n "$ns" scale deployment/web --replicas=3
until_ok 60 bash -c "[[ -n \$($kubectl -n $ns get pods -l app=web -o jsonpath='{range .items[?(@.status.phase==\"Pending\")]}{.metadata.name}{end}') ]]"
stuck=$(pending_web_pod)
until_ok 60 bash -c "$kubectl -n $ns get events --field-selector involvedObject.name=$stuck,reason=FailedCreatePodSandBox -o name | grep -q ."
events "$stuck"

step "troubleshooting: a leaked address (a pod force-deleted while its node's agent was down)"
victim=$(k -n "$ns" get pods -l app=web -o jsonpath='{range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}' | head -1)
victim_ip=$(k get spideripclaims -l "ipam.spidernet.io/pool=$pool" -o jsonpath="{range .items[?(@.spec.podName==\"$victim\")]}{.spec.address}{end}")
[[ -n $victim_ip ]] || fail "no claim of $victim"
run k -n "$ns" delete pod "$victim" --force --grace-period=0
sleep 3
run ! ks check --grace 0s -o /tmp/spindle-ops-report.json
run jq '.findings[] | select(.kind == "leaked")' /tmp/spindle-ops-report.json
run ks release --ip "$victim_ip"
run k get events --field-selector "involvedObject.uid=$(k get sp "$pool" -o jsonpath={.metadata.uid}),reason=AddressReleasedByOperator" \
	-o custom-columns=TYPE:.type,REASON:.reason,FROM:.reportingComponent,SOURCE:.source.component,MESSAGE:.message

step "troubleshooting: counters off (status.allocatedIPCount not the number of claims)"
run k patch sp "$pool" --subresource=status --type=merge -p '{"status":{"allocatedIPCount":42}}'
run k get sp "$pool"
run ! ks check
echo "The controller recounts every pool; start it again (here: the lab's daemons):"
run bin/lab daemons restart
until_ok 60 bash -c "[[ \$($kubectl get sp $pool -o jsonpath='{.status.allocatedIPCount}') != 42 ]]"
run k get sp "$pool"
until_ok 120 all_web_running 3
run k -n "$ns" get pods -l app=web
run ks check

step "troubleshooting: webhook TLS: the API server does not trust the webhook's certificate"
openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj /CN=not-spindle -days 1 -out /tmp/spindle-ops-other-ca.pem 2>/dev/null
bad=$(base64 -w0 </tmp/spindle-ops-other-ca.pem)
run k patch validatingwebhookconfiguration spindle-controller --type=json \
	-p "[{\"op\": \"replace\", \"path\": \"/webhooks/0/clientConfig/caBundle\", \"value\": \"$bad\"}]"
webhook0=$(k get validatingwebhookconfiguration spindle-controller -o jsonpath='{.webhooks[0].name}')
echo "(webhook $webhook0 now carries a CA that did not sign the controller's certificate)"
probe() {
	cat <<EOF | k apply --dry-run=server -f -
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: ops-probe
spec:
  subnet: 172.30.0.0/16
  ips: [172.30.240.100]
EOF
}
run ! probe
echo "Which CA does the configuration carry, and which CA signed the certificate the webhook serves?"
runsh "kubectl get validatingwebhookconfiguration spindle-controller -o jsonpath='{.webhooks[0].clientConfig.caBundle}' | base64 -d | openssl x509 -noout -subject"
runsh "kubectl get validatingwebhookconfiguration spindle-controller -o jsonpath='{.webhooks[0].clientConfig.url}{\"\\n\"}'"
runsh "openssl s_client -connect 127.0.0.1:9443 </dev/null 2>/dev/null | openssl x509 -noout -subject -issuer"
echo "The controller re-asserts the caBundle on start and every --webhook-configuration-resync:"
run bin/lab daemons restart
until_ok 60 probe
run probe
runsh "kubectl get validatingwebhookconfiguration spindle-controller -o jsonpath='{.webhooks[0].clientConfig.caBundle}' | base64 -d | openssl x509 -noout -subject"

step "troubleshooting: webhook down (controller not running)"
run bin/lab daemons stop
run ! probe
run bin/lab daemons restart
until_ok 60 probe

step "Clean up"
run k delete namespace "$ns" --wait=true
until_ok 120 bash -c "[[ \$($kubectl get spideripclaims -l ipam.spidernet.io/pool=$pool -o name | wc -l) -eq 0 ]]"
run k delete sp "$pool"
echo "operate: done"
