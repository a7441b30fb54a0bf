# Shell shared by test/kind/smoke.sh and test/kind/e2e.sh (sourced): the
# cluster's kubectl and helm, commands on a node, the app images and the
# chart's installation.
# shellcheck shell=bash

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEPS=$ROOT/test/lab/tools/build-deps.sh
CLUSTER=$HERE/cluster.sh
KIND_CLUSTER=${KIND_CLUSTER:-spindle}

k() { bash "$CLUSTER" exec "$(bash "$DEPS" path k8s)/kubectl" "$@"; }
helm_() { bash "$CLUSTER" exec "$(bash "$DEPS" path helm)/helm" "$@"; }
node_sh() { bash "$HERE/engine.sh" exec /usr/bin/docker exec "$1" sh -c "$2"; }

# rollout waits until every Spindle and Multus pod of the release is ready
# and the webhooks answer: a ready controller is in the Service's endpoints,
# and in kube-proxy's rules, a moment later (until then the API server's
# calls are refused).
rollout() {
	local ds i
	for ds in spindle-agent spindle-multus; do k -n kube-system rollout status "daemonset/$ds" --timeout 3m >&2; done
	k -n kube-system rollout status deployment/spindle-controller --timeout 3m >&2
	for i in $(seq 1 60); do
		k create --dry-run=server -o name -f - >/dev/null 2>&1 <<'YAML' && return 0
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: spindle-webhook-probe}
spec: {subnet: 192.0.2.0/24, ips: [192.0.2.10]}
YAML
		sleep 1
	done
	echo "the webhooks of spindle-controller did not answer a server-side dry run of a SpiderIPPool within 60 s" >&2
	return 1
}

# load_app_images builds Spindle's and Multus' images (images.sh apps), loads
# them into every node and prints the Spindle image's tag.
load_app_images() {
	local images
	mapfile -t images < <(bash "$HERE/images.sh" apps)
	bash "$HERE/engine.sh" exec "$(bash "$DEPS" path kind)/kind" load docker-image --name "$KIND_CLUSTER" "${images[@]}" >&2
	echo "${images[0]##*:}"
}

# install_chart CHART_DIR TAG [HELM ARGS...] applies the CRDs of
# $CRD_CHART (default: CHART_DIR), then `helm upgrade --install`s the chart
# with Multus and waits for every pod.
install_chart() {
	local chart=$1 tag=$2
	shift 2
	k apply --server-side --force-conflicts -f "${CRD_CHART:-$chart}/crds/" >/dev/null
	helm_ upgrade --install spindle "$chart" -n kube-system --set multus.install=true \
		--set-string image.tag="$tag" "$@" --wait --timeout 5m >/dev/null
	rollout
}
