#!/usr/bin/env bash
# The kind tier of `make test`, on one fresh offline kind cluster:
#   1. smoke.sh upgrade: the previous chart installed with Helm, a Deployment
#      on macvlan, `helm upgrade` to this checkout's chart: the pods keep
#      their addresses (go test ./test/kind/smoke, the tier "kind");
#   2. the e2e suite (e2e.sh) on the installed chart, every spec but those
#      that drive bin/lab (the lab tier runs them): the tier "kind-e2e";
#   3. smoke.sh uninstall: `helm uninstall` leaves nothing on the nodes.
# Then the cluster and its engine are removed, whatever happened. Each step
# leaves its counts in $TIERS for `make test`'s tier line (test/tiers);
# E2E_LABEL_FILTER selects the specs (make test: '!lab-only').
set -uo pipefail
cd "$(dirname "$0")/../.."
tiers=${TIERS:-_out/tiers}
mkdir -p "$tiers"
rm -f "$tiers"/kind*.json "$tiers"/kind-e2e-report.json

finish() {
	bash test/kind/cluster.sh down >/dev/null
	bash test/kind/engine.sh down
}
trap finish EXIT
bash test/kind/cluster.sh down >/dev/null 2>&1 || true

start=$SECONDS
smoke() {
	SPINDLE_KIND=1 go test ./test/kind/smoke -count=1 -json -timeout 20m -run "^$1\$" | bin/tiers gotest "$tiers/$2"
}
smoke TestHelmInstallAndUpgradeKeepPodsAddresses kind.json || exit 1
rc=0
bash test/kind/e2e.sh || rc=1
if [ -s _out/kind/e2e-report.json ]; then
	cp _out/kind/e2e-report.json "$tiers/kind-e2e-report.json"
	bin/tiers ginkgo "$tiers/kind-e2e-report.json" "$tiers/kind-e2e.json" kind-e2e || rc=1
	[ $rc = 0 ] || bin/tiers failures "$tiers/kind-e2e-report.json" >&2 || true
fi
[ $rc = 0 ] || exit 1
smoke TestHelmUninstallLeavesNothingOnTheNodes kind-uninstall.json || exit 1
echo "test-kind: smoke, e2e suite and uninstall passed in $((SECONDS - start)) s"
