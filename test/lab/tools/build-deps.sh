#!/usr/bin/env bash
# Builds the lab's third-party binaries (control plane, etcd, Multus, reference
# CNI plugins) and the pinned developer tools from the Go module proxy, and
# caches each under $SPINDLE_CACHE/<name>-<version>/ so later runs reuse them.
#
#   build-deps.sh k8s|etcd|multus|cni|controller-gen|helm|goimports|all
#
# Each wrapper module is generated in a temporary directory: nothing here
# touches the project's go.mod.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.1}
K8S_STAGING_VERSION=${K8S_STAGING_VERSION:-v0.37.1}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
MULTUS_VERSION=${MULTUS_VERSION:-v4.3.0}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.9.1}
CONTROLLER_TOOLS_VERSION=${CONTROLLER_TOOLS_VERSION:-v0.23.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
GOIMPORTS_VERSION=${GOIMPORTS_VERSION:-v0.47.0}
GOLANGCI_LINT_VERSION=${GOLANGCI_LINT_VERSION:-v2.15.0}

CACHE=${SPINDLE_CACHE:-$HOME/.cache/spindle}
K8S_BINARIES=${K8S_BINARIES:-"kube-apiserver kube-controller-manager kube-scheduler kubectl"}
CNI_PLUGINS="main/macvlan main/bridge main/ptp main/loopback ipam/host-local ipam/static meta/tuning"

export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

log() { echo "build-deps: $*" >&2; }

# wrapper DIR MODULE@VERSION: a throwaway module that requires MODULE@VERSION.
wrapper() {
	local dir=$1
	mkdir -p "$dir"
	(cd "$dir" && printf 'module spindle.local/wrapper\n\ngo 1.26\n' >go.mod)
}

# done_dir NAME VERSION FILES...: prints the cache dir; returns 0 if every file is there.
have() {
	local dir=$1
	shift
	for f in "$@"; do [ -x "$dir/$f" ] || return 1; done
}

build_k8s() {
	local out="$CACHE/k8s-$K8S_VERSION"
	# shellcheck disable=SC2086
	have "$out" $K8S_BINARIES && return 0
	log "building Kubernetes $K8S_VERSION ($K8S_BINARIES) into $out (cold: ~10 min)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	wrapper "$tmp"
	cd "$tmp"
	go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
	local gomod
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
	# Re-point every staging replace of kubernetes' go.mod to the published module.
	local args=()
	while read -r mod; do
		args+=("-replace=$mod=$mod@$K8S_STAGING_VERSION")
	done < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
	[ ${#args[@]} -gt 0 ] || { log "no staging replaces found in $gomod"; return 1; }
	go mod edit "${args[@]}"
	local pkgs=()
	for b in $K8S_BINARIES; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	go get "${pkgs[@]}"
	mkdir -p "$out.tmp"
	local minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
	for b in $K8S_BINARIES; do
		go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$b" "k8s.io/kubernetes/cmd/$b"
	done
	mkdir -p "$out" && mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
}

build_etcd() {
	local out="$CACHE/etcd-$ETCD_VERSION"
	have "$out" etcd && return 0
	log "building etcd $ETCD_VERSION into $out"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	wrapper "$tmp"
	cd "$tmp"
	go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
	mkdir -p "$out"
	go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
	mv "$out/etcd.tmp" "$out/etcd"
}

build_multus() {
	local out="$CACHE/multus-$MULTUS_VERSION"
	have "$out" multus && return 0
	log "building Multus $MULTUS_VERSION into $out"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	wrapper "$tmp"
	cd "$tmp"
	go get "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus@$MULTUS_VERSION"
	mkdir -p "$out"
	go build -trimpath -ldflags "-s -w" -o "$out/multus.tmp" gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus
	mv "$out/multus.tmp" "$out/multus"
}

build_cni() {
	local out="$CACHE/cni-plugins-$CNI_PLUGINS_VERSION"
	local names=()
	for p in $CNI_PLUGINS; do names+=("${p#*/}"); done
	have "$out" "${names[@]}" && return 0
	log "building CNI plugins $CNI_PLUGINS_VERSION into $out"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	wrapper "$tmp"
	cd "$tmp"
	local pkgs=()
	for p in $CNI_PLUGINS; do pkgs+=("github.com/containernetworking/plugins/plugins/$p"); done
	go get "${pkgs[@]/%/@$CNI_PLUGINS_VERSION}"
	mkdir -p "$out.tmp"
	for p in $CNI_PLUGINS; do
		go build -trimpath -ldflags "-s -w" -o "$out.tmp/${p#*/}" "github.com/containernetworking/plugins/plugins/$p"
	done
	mkdir -p "$out" && mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
}

# gotool NAME VERSION PKG BIN: a pinned Go tool built through a wrapper module.
gotool() {
	local name=$1 version=$2 pkg=$3 bin=$4
	local out="$CACHE/$name-$version"
	have "$out" "$bin" && return 0
	log "building $name $version into $out"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	wrapper "$tmp"
	cd "$tmp"
	go get "$pkg@$version"
	mkdir -p "$out"
	go build -trimpath -ldflags "-s -w ${5:-}" -o "$out/$bin.tmp" "$pkg"
	mv "$out/$bin.tmp" "$out/$bin"
}

build_controller_gen() { gotool controller-tools "$CONTROLLER_TOOLS_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen controller-gen; }
build_helm() { gotool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"; }
build_golangci_lint() { gotool golangci-lint "$GOLANGCI_LINT_VERSION" github.com/golangci/golangci-lint/v2/cmd/golangci-lint golangci-lint; }
build_goimports() { gotool goimports "$GOIMPORTS_VERSION" golang.org/x/tools/cmd/goimports goimports; }

# path NAME: prints the cache directory holding NAME's binaries.
path() {
	case $1 in
	k8s) echo "$CACHE/k8s-$K8S_VERSION" ;;
	etcd) echo "$CACHE/etcd-$ETCD_VERSION" ;;
	multus) echo "$CACHE/multus-$MULTUS_VERSION" ;;
	cni) echo "$CACHE/cni-plugins-$CNI_PLUGINS_VERSION" ;;
	controller-gen) echo "$CACHE/controller-tools-$CONTROLLER_TOOLS_VERSION" ;;
	helm) echo "$CACHE/helm-$HELM_VERSION" ;;
	goimports) echo "$CACHE/goimports-$GOIMPORTS_VERSION" ;;
	golangci-lint) echo "$CACHE/golangci-lint-$GOLANGCI_LINT_VERSION" ;;
	*) echo "unknown dependency $1" >&2; return 2 ;;
	esac
}

main() {
	[ $# -gt 0 ] || set -- all
	case $1 in
	path) path "$2"; return ;;
	all) set -- etcd cni multus k8s controller-gen goimports golangci-lint helm ;;
	esac
	for what in "$@"; do
		case $what in
		k8s) (build_k8s) ;;
		etcd) (build_etcd) ;;
		multus) (build_multus) ;;
		cni) (build_cni) ;;
		controller-gen) (build_controller_gen) ;;
		helm) (build_helm) ;;
		goimports) (build_goimports) ;;
		golangci-lint) (build_golangci_lint) ;;
		*) echo "build-deps: unknown target $what" >&2; return 2 ;;
		esac
	done
}

main "$@"
