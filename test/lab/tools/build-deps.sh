#!/usr/bin/env bash
# Builds the lab's third-party binaries (control plane, etcd, Multus, reference
# CNI plugins) and the pinned developer tools from the Go module proxy, and
# caches each under $SPINDLE_CACHE/<name>-<version>/ so later runs reuse them.
#
# Every build resolves exactly the module graph committed in
# test/lab/tools/deps/<name>/{go.mod,go.sum} and is built with -mod=readonly:
# what the proxy publishes later changes nothing.
#
#   build-deps.sh NAME...|all       build (or reuse) the named dependencies
#   build-deps.sh path NAME         print the cache directory holding NAME
#   build-deps.sh check [NAME...]   verify every wrapper resolves exactly its pin
#   build-deps.sh pin NAME...       (maintainers) regenerate NAME's go.mod/go.sum
#                                   from the table below; commit the result
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DEPS_DIR=$HERE/deps
CACHE=${SPINDLE_CACHE:-$HOME/.cache/spindle}

export GOTOOLCHAIN=local CGO_ENABLED=0
unset GOFLAGS

# The pins. One row per wrapper module:
#   name | module | version | packages to build (relative to the module) | ldflags
# (@VERSION@ in ldflags stands for the row's version).
# The k8s row is special: Kubernetes' staging modules are pinned to K8S_STAGING.
K8S_STAGING=v0.37.1
PINS=$(
	cat <<'EOF'
k8s|k8s.io/kubernetes|v1.37.1|cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl cmd/kubelet cmd/kubeadm cmd/kube-proxy|-X k8s.io/component-base/version.gitVersion=@VERSION@ -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean
etcd|go.etcd.io/etcd/server/v3|v3.6.16|.=etcd|
multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4|v4.3.0|cmd/multus|
cni-plugins|github.com/containernetworking/plugins|v1.9.1|plugins/main/macvlan plugins/main/bridge plugins/main/ptp plugins/main/loopback plugins/ipam/host-local plugins/ipam/static plugins/meta/tuning|
controller-tools|sigs.k8s.io/controller-tools|v0.23.0|cmd/controller-gen|
helm|helm.sh/helm/v3|v3.22.0|cmd/helm|-X helm.sh/helm/v3/internal/version.version=@VERSION@
goimports|golang.org/x/tools|v0.47.0|cmd/goimports|
golangci-lint|github.com/golangci/golangci-lint/v2|v2.15.0|cmd/golangci-lint|
promtool|github.com/prometheus/prometheus|v0.316.0|cmd/promtool|-X github.com/prometheus/common/version.Version=@VERSION@
containerd|github.com/containerd/containerd/v2|v2.3.4|cmd/containerd cmd/ctr cmd/containerd-shim-runc-v2|-X github.com/containerd/containerd/v2/version.Version=@VERSION@
runc|github.com/opencontainers/runc|v1.4.3|.=runc|-X main.version=@VERSION@
crictl|sigs.k8s.io/cri-tools|v1.36.0|cmd/crictl|-X sigs.k8s.io/cri-tools/pkg/version.Version=@VERSION@
kind|sigs.k8s.io/kind|v0.32.0|.=kind|
coredns|github.com/coredns/coredns|v1.14.6|.=coredns|
multus-thick|gopkg.in/k8snetworkplumbingwg/multus-cni.v4|v4.3.0|cmd/multus-daemon cmd/multus-shim cmd/install_multus cmd/passthru-cni|
EOF
)

log() { echo "build-deps: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# Older names accepted on the command line.
canon() {
	case $1 in
	cni) echo cni-plugins ;;
	controller-gen) echo controller-tools ;;
	*) echo "$1" ;;
	esac
}

# row NAME: sets MOD VERSION PKGS LDFLAGS from the table.
row() {
	local line
	line=$(grep "^$1|" <<<"$PINS") || die "unknown dependency $1 (known: $(cut -d'|' -f1 <<<"$PINS" | tr '\n' ' '))"
	IFS='|' read -r _ MOD VERSION PKGS LDFLAGS <<<"$line"
	LDFLAGS=${LDFLAGS//@VERSION@/$VERSION}
}

# full_pkgs: the import paths of PKGS.
full_pkgs() {
	local p out=()
	for p in $PKGS; do
		case $p in .=*) out+=("$MOD") ;; *) out+=("$MOD/$p") ;; esac
	done
	echo "${out[@]}"
}

# A package written ".=NAME" is the module's root package, installed as NAME.
bin_name() { case $1 in .=*) echo "${1#.=}" ;; *) basename "$1" ;; esac; }

# stamp NAME: a digest of the wrapper's go.mod and go.sum; a cache entry built
# from other files is rebuilt.
stamp() { cat "$DEPS_DIR/$1/go.mod" "$DEPS_DIR/$1/go.sum" | sha256sum | cut -c1-16; }

cache_dir() {
	row "$1"
	echo "$CACHE/$1-$VERSION"
}

# check NAME: the wrapper resolves exactly the pinned version of its module.
check_one() {
	local name=$1 got
	row "$name"
	[ -f "$DEPS_DIR/$name/go.mod" ] && [ -f "$DEPS_DIR/$name/go.sum" ] ||
		die "$name: $DEPS_DIR/$name/go.mod or go.sum is missing: run build-deps.sh pin $name and commit it"
	got=$(cd "$DEPS_DIR/$name" && go list -mod=readonly -m -f '{{.Version}}' "$MOD") ||
		die "$name: the wrapper module in $DEPS_DIR/$name does not resolve (go list -m $MOD failed)"
	[ "$got" = "$VERSION" ] ||
		die "$name: the wrapper resolves $MOD $got but the pin is $VERSION: run build-deps.sh pin $name and commit it"
	if [ "$MOD" = k8s.io/kubernetes ]; then
		got=$(cd "$DEPS_DIR/$name" && go list -mod=readonly -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/apiserver)
		[ "$got" = "$K8S_STAGING" ] ||
			die "k8s: the wrapper resolves k8s.io/apiserver $got but the staging pin is $K8S_STAGING: run build-deps.sh pin k8s"
	fi
	echo "$name $MOD $VERSION"
}

build_one() {
	local name=$1 out b
	row "$name"
	out="$CACHE/$name-$VERSION"
	local want
	want=$(stamp "$name")
	if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$want" ]; then
		local ok=1
		for b in $PKGS; do [ -x "$out/$(bin_name "$b")" ] || ok=0; done
		[ $ok = 1 ] && return 0
	fi
	check_one "$name" >/dev/null
	log "building $name $VERSION ($MOD: $PKGS) into $out"
	local start=$SECONDS
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp"
	local tags="" cgo=0 ext=""
	if [ "$name" = runc ]; then
		# runc filters system calls with libseccomp (cgo), linked statically so
		# that it runs in any node image.
		tags="seccomp netgo osusergo" cgo=1 ext="-linkmode external -extldflags -static"
		[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ] || [ -n "$(find /usr/lib -name libseccomp.a 2>/dev/null | head -1)" ] ||
			die "runc needs libseccomp's static library: apt-get install libseccomp-dev"
	fi
	# shellcheck disable=SC2046
	(cd "$DEPS_DIR/$name" && CGO_ENABLED=$cgo go build -mod=readonly -trimpath -tags "$tags" -ldflags "-s -w $LDFLAGS $ext" -o "$out.tmp/" $(full_pkgs))
	for b in $PKGS; do
		local built
		built=$(basename "${MOD%/v[0-9]*}")
		case $b in .=*) [ "$built" = "$(bin_name "$b")" ] || mv "$out.tmp/$built" "$out.tmp/$(bin_name "$b")" ;; esac
	done
	echo "$want" >"$out.tmp/.stamp"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	log "built $name $VERSION in $((SECONDS - start)) s"
}

# pin NAME: regenerate the wrapper module from the table (needs the proxy).
pin_one() {
	local name=$1 dir
	row "$name"
	dir="$DEPS_DIR/$name"
	mkdir -p "$dir"
	rm -f "$dir/go.mod" "$dir/go.sum"
	(
		cd "$dir"
		printf '// Pinned build of %s %s for Spindle'"'"'s lab and tools; regenerate with\n// test/lab/tools/build-deps.sh pin %s.\nmodule spindle.local/deps/%s\n\ngo 1.26\n' "$MOD" "$VERSION" "$name" "$name" >go.mod
		go mod edit -require="$MOD@$VERSION"
		if [ "$MOD" = k8s.io/kubernetes ]; then
			local gomod args=()
			gomod=$(go mod download -json "$MOD@$VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
			while read -r m; do
				args+=("-replace=$m=$m@$K8S_STAGING")
			done < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
			[ ${#args[@]} -gt 0 ] || die "no staging replaces found in $gomod"
			go mod edit "${args[@]}"
		fi
		local p
		for p in $(full_pkgs); do go mod edit -tool="$p"; done
		go mod tidy
	)
	check_one "$name"
}

# The kind cluster's node binaries are built only when asked for by name
# (make kind-images); `all` leaves them out.
KIND_ONLY="containerd runc crictl kind coredns multus-thick"

all_names() { cut -d'|' -f1 <<<"$PINS" | grep -vxF -f <(tr ' ' '\n' <<<"$KIND_ONLY"); }

main() {
	[ $# -gt 0 ] || set -- all
	local cmd=$1
	case $cmd in
	path)
		cache_dir "$(canon "$2")"
		return
		;;
	check | pin)
		shift
		[ $# -gt 0 ] || set -- $(all_names)
		;;
	all)
		cmd=build
		set -- $(all_names)
		;;
	*) cmd=build ;;
	esac
	local what
	for what in "$@"; do
		what=$(canon "$what")
		case $cmd in
		check) check_one "$what" ;;
		pin) pin_one "$what" ;;
		build) build_one "$what" ;;
		esac
	done
}

main "$@"
