#!/usr/bin/env bash
# End-to-end run on kind: create a cluster (test/kind/cluster.yaml), install the
# CNI reference plugins and Multus (thick, pinned), build and load the Spindle
# image, install the chart from charts/spindle the way users do, and run the
# Ginkgo e2e suite (test/e2e) against the cluster.
#
#   make e2e-kind                       # or: bash test/kind/run.sh
#
# Environment:
#   KIND_CLUSTER   cluster name (default spindle-e2e); an existing one is reused
#   KEEP_CLUSTER=1 keep the cluster after the run (default: delete it on success)
#   IMAGE          image to build and load (default localhost/spindle:e2e)
#   MULTUS_VERSION Multus release whose thick manifest is applied (default v4.3.0)
#   E2E_ARGS       extra arguments for `go test ./test/e2e/` (e.g. -ginkgo.focus=...)
#
# Needs docker (with a reachable engine), kind, and internet access for the
# kind node image, the Multus manifest and images, and the Go module proxy.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
KIND_CLUSTER=${KIND_CLUSTER:-spindle-e2e}
IMAGE=${IMAGE:-localhost/spindle:e2e}
MULTUS_VERSION=${MULTUS_VERSION:-v4.3.0}
NAMESPACE=kube-system
KUBECONFIG_FILE=$ROOT/bin/kind-$KIND_CLUSTER.kubeconfig

log() { echo "e2e-kind: $*" >&2; }
die() {
	log "$*"
	exit 1
}

command -v docker >/dev/null || die "docker is not installed: e2e-kind builds the image and runs kind nodes with Docker"
docker info >/dev/null 2>&1 || die "cannot reach a Docker engine (docker info failed): start Docker or set DOCKER_HOST"
command -v kind >/dev/null || die "kind is not installed: see https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
command -v curl >/dev/null || die "curl is not installed (needed to fetch the pinned Multus manifest)"

# Pinned helm, kubectl and CNI reference plugins, built from the module proxy.
bash test/lab/tools/build-deps.sh helm
bash test/lab/tools/build-deps.sh cni
HELM=$(bash test/lab/tools/build-deps.sh path helm)/helm
CNI_DIR=$(bash test/lab/tools/build-deps.sh path cni)
if command -v kubectl >/dev/null; then
	KUBECTL=$(command -v kubectl)
else
	K8S_BINARIES=kubectl bash test/lab/tools/build-deps.sh k8s
	KUBECTL=$(bash test/lab/tools/build-deps.sh path k8s)/kubectl
fi

mkdir -p bin
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
	log "reusing kind cluster $KIND_CLUSTER"
else
	log "creating kind cluster $KIND_CLUSTER"
	kind create cluster --name "$KIND_CLUSTER" --config test/kind/cluster.yaml --wait 5m
fi
kind get kubeconfig --name "$KIND_CLUSTER" >"$KUBECONFIG_FILE"
export KUBECONFIG=$KUBECONFIG_FILE
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# kind nodes ship only the plugins kindnet needs; the suite also uses macvlan,
# bridge, tuning, static...
log "installing the CNI reference plugins from $CNI_DIR on every node"
for node in $(kind get nodes --name "$KIND_CLUSTER"); do
	for p in "$CNI_DIR"/*; do
		docker cp "$p" "$node:/opt/cni/bin/$(basename "$p")"
	done
done

log "installing Multus $MULTUS_VERSION (thick)"
curl -fsSL "https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/$MULTUS_VERSION/deployments/multus-daemonset-thick.yml" |
	sed "s#ghcr.io/k8snetworkplumbingwg/multus-cni:snapshot-thick#ghcr.io/k8snetworkplumbingwg/multus-cni:$MULTUS_VERSION-thick#" |
	k apply -f -
k -n kube-system rollout status daemonset/kube-multus-ds --timeout 5m

log "building $IMAGE"
docker build -f cmd/Dockerfile -t "$IMAGE" .
kind load docker-image --name "$KIND_CLUSTER" "$IMAGE"

# The production path: CRDs first (helm install also does it from crds/ on a
# first install; applying them makes a re-run on a kept cluster an upgrade).
log "installing Spindle from charts/spindle"
k apply --server-side --force-conflicts -f charts/spindle/crds/
repo=${IMAGE%:*}
tag=${IMAGE##*:}
"$HELM" upgrade --install spindle charts/spindle --namespace "$NAMESPACE" --kubeconfig "$KUBECONFIG_FILE" \
	--set image.registry= --set image.repository="$repo" --set-string image.tag="$tag" --set image.pullPolicy=Never \
	--set ipam.enableIPv6=true \
	--wait --timeout 5m
k -n "$NAMESPACE" rollout status daemonset/spindle-agent --timeout 5m
k -n "$NAMESPACE" rollout status deployment/spindle-controller --timeout 5m

log "running the e2e suite"
# shellcheck disable=SC2086
go test ./test/e2e/ -count=1 -timeout 60m -kubeconfig "$KUBECONFIG_FILE" -ginkgo.v ${E2E_ARGS:-}

if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
	log "deleting kind cluster $KIND_CLUSTER (KEEP_CLUSTER=1 keeps it)"
	kind delete cluster --name "$KIND_CLUSTER"
fi
