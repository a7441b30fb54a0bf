#!/usr/bin/env bash
# Runs the Ginkgo e2e suite (test/e2e) on the offline kind cluster: brings the
# cluster up if needed (cluster.sh up, which writes _out/kind/env, the facts
# the suite reads to reach nodes, pods and the underlay), installs this
# checkout's chart with Multus (as smoke.sh does, lib.sh), adds the pinned CNI
# reference plugins the specs use to the nodes, and runs the suite against
# _out/kind/kubeconfig from inside the engine's network namespace, on
# E2E_PROCS parallel processes (default 3; specs marked Serial run alone at
# the end) with the pinned ginkgo command.
#
#   make e2e-kind                          # or: bash test/kind/e2e.sh
#   bash test/kind/e2e.sh --focus=coordinator
#   E2E_LABEL_FILTER='!lab-only' bash test/kind/e2e.sh   # what make test runs
#
# Arguments go to ginkgo (--focus, --label-filter, ...). The cluster stays up
# (make kind-down).
# Ends with one "kind-e2e: specs=N ran=R passed=P skipped=S" line, the
# reason of every skipped spec and the name of every failed one; exits
# non-zero when a spec failed.
set -euo pipefail

# shellcheck source=test/kind/lib.sh
source "$(dirname "$0")/lib.sh"
OUT=$ROOT/_out/kind
REPORT=$OUT/e2e-report.json

log() { echo "kind-e2e: $*" >&2; }

start=$SECONDS
bash "$DEPS" helm k8s cni >/dev/null
# The specs run the operator tools of bin/ (kubectl-spindle, spindle-selftest,
# spindle-controller --import).
make -C "$ROOT" --no-print-directory build >&2
bash "$CLUSTER" up

# The nodes carry the plugins of the default network; the specs also use the
# other reference plugins (static, tuning, ...): the same pinned build as the
# lab's.
cni=$(bash "$DEPS" path cni)
nodes=$(k get nodes -o jsonpath='{.items[*].metadata.name}')
for n in $nodes; do
	for p in "$cni"/*; do
		node_sh "$n" "test -x /opt/cni/bin/${p##*/}" ||
			bash "$HERE/engine.sh" exec /usr/bin/docker cp "$p" "$n:/opt/cni/bin/${p##*/}"
	done
done
# The KubeVirt spec plays KubeVirt's controllers against its CRDs, which the
# lab installs itself.
k apply --server-side -f "$ROOT/test/lab/manifests/kubevirt-crds.yaml" >/dev/null
# Specs place pods on every node, like on the lab.
k taint nodes --all node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null 2>&1 || true

# The seed manifests name public images (nginx, redis, mysql, busybox) and
# the cluster is offline: they are loaded under those names. The pause image
# stands for the servers (no spec talks to them); busybox is Debian's static
# build, for the specs whose containers run a shell.
e2e_images() {
	local docker=(bash "$HERE/engine.sh" exec /usr/bin/docker) ctx img
	ctx=$(mktemp -d)
	cp "${BUSYBOX:-/bin/busybox}" "$ctx/busybox"
	printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["/bin/sh"]\n' >"$ctx/Dockerfile"
	"${docker[@]}" build -q -t docker.io/library/busybox:latest "$ctx" >/dev/null
	rm -rf "$ctx"
	for img in nginx:latest nginx:alpine nginx:1.7.9 redis:latest mysql:latest; do
		"${docker[@]}" tag registry.k8s.io/pause:3.10 "docker.io/library/$img"
	done
	bash "$HERE/engine.sh" exec "$(bash "$DEPS" path kind)/kind" load docker-image --name "$KIND_CLUSTER" \
		docker.io/library/busybox:latest docker.io/library/nginx:latest docker.io/library/nginx:alpine \
		docker.io/library/nginx:1.7.9 docker.io/library/redis:latest docker.io/library/mysql:latest >&2
}
e2e_images
tag=$(load_app_images)
log "helm install of this checkout's chart (multus.install=true, ipam.enableIPv6=true)"
install_chart "$ROOT/charts/spindle" "$tag" --set ipam.enableIPv6=true

log "building and running the e2e suite on ${E2E_PROCS:=3} processes${E2E_LABEL_FILTER:+ (label filter $E2E_LABEL_FILTER)}"
(cd "$ROOT" && go test -c -o "$OUT/e2e.test" ./test/e2e/ && go build -o "$OUT/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
rm -f "$REPORT"
# kind's kubelets start about one pod a second on a 2-core machine: the churn
# spec's 500 pods (its default on the lab) would outlast its 10 minutes.
export E2E_CHURN_PODS=${E2E_CHURN_PODS:-200}
# The self-test's address check runs spindle-selftest in a pod: Spindle's
# image, as the chart's helm test does.
export E2E_SELFTEST_IMAGE=${E2E_SELFTEST_IMAGE:-ghcr.io/spindle-net/spindle:$tag}
suite_start=$SECONDS
set +e
(cd "$ROOT/test/e2e" && bash "$CLUSTER" exec "$OUT/ginkgo" run --procs="$E2E_PROCS" --timeout=60m -v --no-color \
	--json-report="$REPORT" ${E2E_LABEL_FILTER:+--label-filter="$E2E_LABEL_FILTER"} "$@" "$OUT/e2e.test" -- -kubeconfig "$OUT/kubeconfig")
rc=$?
set -e
[ -s "$REPORT" ] || {
	log "FAIL: the suite wrote no report ($REPORT)"
	exit 1
}
specs='[.[].SpecReports[]? | select(.LeafNodeType == "It")]'
count() { jq "$specs | map(select($1)) | length" "$REPORT"; }
n=$(count 'true')
skipped=$(count '.State == "skipped" or .State == "pending"')
passed=$(count '.State == "passed"')
jq -r "$specs | map(select(.State == \"skipped\"))[] | \"kind-e2e: skipped: \" + (.ContainerHierarchyTexts + [.LeafNodeText] | join(\" \")) + \": \" + (if (.Failure.Message // \"\") == \"\" then \"not selected here (label filter: runs in the other suite)\" else .Failure.Message end)" "$REPORT"
jq -r "$specs | map(select(.State != \"skipped\" and .State != \"passed\" and .State != \"pending\"))[] | \"kind-e2e: \" + .State + \": \" + (.ContainerHierarchyTexts + [.LeafNodeText] | join(\" \"))" "$REPORT"
echo "kind-e2e: specs=$n ran=$((n - skipped)) passed=$passed skipped=$skipped suite_seconds=$((SECONDS - suite_start)) seconds=$((SECONDS - start))"
exit $rc
