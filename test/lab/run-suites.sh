#!/usr/bin/env bash
# Runs every lab suite in ONE fresh lab: starts a 3-node lab with Spindle's
# agent and controller, runs the Ginkgo e2e suite, the chart's server-side
# dry run and the short chaos run (last: it kills control-plane processes)
# against it, then tears the lab down and checks nothing is left.
# On failure it prints the tail of every lab log, then every failed spec with
# its message, so that the cause is at the end of the output.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${LAB_UP_ARGS:?LAB_UP_ARGS is set by the Makefile: run make test-lab}"
# A prefix of its own keeps this run apart from a developer's lab.
export LAB_PREFIX=${LAB_PREFIX:-sci}
NODES=${NODES:-3}
E2E_TIMEOUT=${E2E_TIMEOUT:-40m}

if [ "$(id -u)" != 0 ]; then
	if [ "${SPINDLE_REQUIRE_ALL:-}" = 1 ]; then
		echo "test-lab: the lab needs root (network and mount namespaces); failing because SPINDLE_REQUIRE_ALL=1" >&2
		exit 1
	fi
	echo "test-lab: the lab needs root (network and mount namespaces); skipped" >&2
	exit 0
fi

dump_logs() {
	echo "---- lab logs (tails) ----" >&2
	for f in _lab/logs/*.log; do
		[ -f "$f" ] || continue
		echo "==> $f <==" >&2
		# Long lines (objects dumped by klog) are cut: the tail stays short.
		tail -n 30 "$f" | cut -c1-400 >&2
	done
}

tiers=${TIERS:-_out/tiers}

print_failures() {
	[ -f "$tiers/e2e-report.json" ] || return 0
	echo "---- failed specs ----" >&2
	bin/tiers failures "$tiers/e2e-report.json" >&2 || true
}

finish() {
	local rc=$?
	if [ $rc -ne 0 ]; then
		dump_logs
		print_failures
	fi
	if ! bin/lab down; then
		echo "test-lab: lab-down left something behind" >&2
		rc=1
	fi
	exit $rc
}

# A lab left by an interrupted run of this checkout is removed first.
bin/lab down >/dev/null 2>&1 || true
trap finish EXIT

start=$(date +%s)
# shellcheck disable=SC2086
bin/lab up --nodes "$NODES" $LAB_UP_ARGS
echo "test-lab: lab up in $(($(date +%s) - start)) s"

export KUBECONFIG=$PWD/_lab/kubeconfig
# Each suite leaves its counts for `make test`'s tier line (test/tiers).
mkdir -p "$tiers"
rm -f "$tiers"/lab-*.json "$tiers"/e2e-report.json
go build -o bin/tiers ./test/tiers
# make test runs only the specs that drive bin/lab here (LAB_E2E_LABEL_FILTER=
# lab-only), every other one on the kind cluster.
go test ./test/e2e/ -v -count=1 -timeout "$E2E_TIMEOUT" -kubeconfig "$KUBECONFIG" -ginkgo.v -ginkgo.no-color \
	-ginkgo.json-report="$PWD/$tiers/e2e-report.json" ${LAB_E2E_LABEL_FILTER:+-ginkgo.label-filter="$LAB_E2E_LABEL_FILTER"}
bin/tiers ginkgo "$tiers/e2e-report.json" "$tiers/lab-e2e.json"
LAB_KUBECONFIG=$KUBECONFIG go test ./test/chart/ -json -count=1 -run 'DryRun' | bin/tiers gotest "$tiers/lab-chart.json"
# The short chaos run (test/chaos, docs/chaos.md) kills the agent, the
# controller, kube-apiserver and etcd: nothing may run after it.
chaos_out=$PWD/$tiers/chaos.txt
LAB_KUBECONFIG=$KUBECONFIG CHAOS_OUT=$chaos_out go test ./test/chaos/ -json -count=1 -timeout 30m -run '^TestLabChaos$' | bin/tiers gotest "$tiers/lab-chaos.json"
grep -h '^chaos: seed=.* pods=' "$chaos_out" | tail -1
echo "test-lab: all lab suites passed in $(($(date +%s) - start)) s"
