#!/usr/bin/env bash
# Builds, offline, everything the kind cluster runs (make kind-images):
#   - the pinned node binaries (containerd, runc, crictl, kind, kubelet,
#     kubeadm, kube-proxy) from the Go module proxy (test/lab/tools/build-deps.sh);
#   - a Debian bookworm root file system (debootstrap, from Debian's mirror);
#   - the node image: that root file system with kind's node layout (read from
#     the pinned kind module at build time), systemd as init, and kubeadm's
#     control-plane images preloaded into the node's containerd;
# in the kind engine (test/kind/engine.sh). Every result is cached and keyed
# by what it is built from: a second run does nothing.
#
#   images.sh            build (or reuse) the node image; prints its tag
#   images.sh tag        print the node image's tag without building
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${SPINDLE_CACHE:-$HOME/.cache/spindle}
DEPS=$ROOT/test/lab/tools/build-deps.sh
ENGINE=$HERE/engine.sh
DOCKER=${DOCKER:-/usr/bin/docker}
K8S_VERSION=v1.37.1
PAUSE_VERSION=3.10.2
# The etcd kubeadm is told to use (kubeadm's own default tag is patched in the
# cluster configuration): the lab's pinned build.
ETCD_TAG=v3.6.16
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,procps,ca-certificates,socat
NODE_DEPS="k8s etcd cni-plugins containerd runc crictl kind"
BUSYBOX=${BUSYBOX:-/bin/busybox}
SPINDLE_IMAGE=ghcr.io/spindle-net/spindle
MULTUS_IMAGE=ghcr.io/k8snetworkplumbingwg/multus-cni:v4.3.0-thick

log() { echo "kind-images: $*" >&2; }
die() {
	log "$*"
	exit 1
}
docker_() { bash "$ENGINE" exec "$DOCKER" "$@"; }

kind_module() {
	(cd "$ROOT/test/lab/tools/deps/kind" && go list -mod=readonly -m -f '{{.Dir}}' sigs.k8s.io/kind)
}

# key: a digest of every input of the node image.
key() {
	{
		echo "$K8S_VERSION $PAUSE_VERSION $ETCD_TAG $SUITE $PACKAGES"
		local d
		for d in $NODE_DEPS; do cat "$ROOT/test/lab/tools/deps/$d/go.sum"; done
		cat "$HERE/images.sh"
		find "$HERE/files" -type f | sort | xargs cat
	} | sha256sum | cut -c1-12
}

tag() { echo "spindle.local/kind-node:$K8S_VERSION-$(key)"; }

# rootfs: the Debian root file system as a tarball, cached by suite and packages.
rootfs() {
	local k out
	k=$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-12)
	out=$CACHE/kind/rootfs-$SUITE-$k.tar
	if [ ! -f "$out" ]; then
		command -v debootstrap >/dev/null || die "debootstrap is missing: make kind-deps installs it"
		local dir=$CACHE/kind/rootfs.tmp
		rm -rf "$dir"
		log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
		debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" "$MIRROR" >"$CACHE/kind/debootstrap.log" 2>&1 ||
			die "debootstrap failed: see $CACHE/kind/debootstrap.log"
		# Nothing of the machine that built it: no apt lists, no machine id.
		rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/etc/machine-id
		tar -C "$dir" --numeric-owner -cf "$out.tmp" .
		mv "$out.tmp" "$out"
		rm -rf "$dir"
	fi
	echo "$out"
}

# image_exists TAG
image_exists() { docker_ image inspect "$1" >/dev/null 2>&1; }

# scratch_image TAG BINARY: an image FROM scratch with BINARY as /usr/local/bin/<its name>, its entrypoint.
scratch_image() {
	local tag=$1 bin=$2 ctx
	image_exists "$tag" && return 0
	ctx=$(mktemp -d)
	cp "$bin" "$ctx/"
	printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\nENV PATH=/usr/local/bin:/usr/bin:/bin\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
		"$(basename "$bin")" "$(basename "$bin")" "$(basename "$bin")" >"$ctx/Dockerfile"
	docker_ build -q -t "$tag" "$ctx" >/dev/null
	rm -rf "$ctx"
}

build() {
	local node
	node=$(tag)
	bash "$ENGINE" up
	if image_exists "$node"; then
		echo "$node"
		return 0
	fi
	local start=$SECONDS d
	# shellcheck disable=SC2086
	bash "$DEPS" $NODE_DEPS
	local k8s etcd cni containerd runc crictl
	k8s=$(bash "$DEPS" path k8s)
	etcd=$(bash "$DEPS" path etcd)
	cni=$(bash "$DEPS" path cni-plugins)
	containerd=$(bash "$DEPS" path containerd)
	runc=$(bash "$DEPS" path runc)
	crictl=$(bash "$DEPS" path crictl)

	local base=spindle.local/kind-base:$SUITE-$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-12)
	if ! image_exists "$base"; then
		local tarball
		tarball=$(rootfs)
		log "importing $tarball as $base"
		bash "$ENGINE" exec sh -c "'$DOCKER' import - '$base' <'$tarball'" >/dev/null
	fi

	# Control-plane images: static binaries FROM scratch, kube-proxy on the
	# Debian base (it runs iptables and nft).
	local ctx
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' RETURN
	for d in kube-apiserver kube-controller-manager kube-scheduler; do
		scratch_image "registry.k8s.io/$d:$K8S_VERSION" "$k8s/$d"
	done
	scratch_image "registry.k8s.io/etcd:$ETCD_TAG" "$etcd/etcd"
	if ! image_exists "registry.k8s.io/pause:$PAUSE_VERSION"; then
		mkdir -p "$ctx/pause"
		local src
		src=$(cd "$ROOT/test/lab/tools/deps/k8s" && go list -mod=readonly -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
		gcc -Os -static -DVERSION="$PAUSE_VERSION" -o "$ctx/pause/pause" "$src"
		printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/pause/Dockerfile"
		docker_ build -q -t "registry.k8s.io/pause:$PAUSE_VERSION" "$ctx/pause" >/dev/null
	fi
	# containerd's sandbox image in kind's configuration is pause:3.10.
	docker_ tag "registry.k8s.io/pause:$PAUSE_VERSION" registry.k8s.io/pause:3.10
	if ! image_exists "registry.k8s.io/kube-proxy:$K8S_VERSION"; then
		mkdir -p "$ctx/proxy"
		cp "$k8s/kube-proxy" "$ctx/proxy/"
		printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT ["/usr/local/bin/kube-proxy"]\n' "$base" >"$ctx/proxy/Dockerfile"
		docker_ build -q -t "registry.k8s.io/kube-proxy:$K8S_VERSION" "$ctx/proxy" >/dev/null
	fi

	# The node: kind's node layout from the pinned kind module, our binaries.
	local files
	files=$(kind_module)/images/base/files
	[ -d "$files" ] || die "kind's node files are not in the module cache ($files)"
	mkdir -p "$ctx/node/bin" "$ctx/node/cni"
	cp -r "$files" "$ctx/node/files"
	chmod -R u+w "$ctx/node/files"
	cp -r "$HERE/files/." "$ctx/node/files/"
	rm -rf "$ctx/node/files/LICENSES" "$ctx/node/files/etc/systemd/system/containerd-fuse-overlayfs.service"
	# No fuse-overlayfs snapshotter, containerd's default runtime spec, and the
	# OOM score limit that a container without CAP_SYS_RESOURCE needs.
	sed -i -e '/^\[proxy_plugins/,/^$/d' -e '/address = "\/run\/containerd-fuse-overlayfs.sock"/d' -e '/type = "snapshot"/d' \
		-e '/base_runtime_spec/d' -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
		"$ctx/node/files/etc/containerd/config.toml"
	cp "$containerd"/{containerd,ctr,containerd-shim-runc-v2} "$crictl/crictl" "$ctx/node/bin/"
	cp "$runc/runc" "$k8s/kubelet" "$k8s/kubeadm" "$k8s/kubectl" "$ctx/node/bin/"
	cp "$cni"/{host-local,loopback,ptp,bridge,macvlan} "$ctx/node/cni/"
	cat >"$ctx/node/Dockerfile" <<DOCKERFILE
FROM $base
COPY files/ /
COPY bin/containerd bin/ctr bin/containerd-shim-runc-v2 bin/crictl /usr/local/bin/
COPY bin/runc /usr/local/sbin/runc
COPY bin/kubelet bin/kubeadm bin/kubectl /usr/bin/
COPY cni/ /opt/cni/bin/
RUN chmod 0755 /usr/local/bin/* /kind/bin/* && \\
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf && \\
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup* \\
      /lib/systemd/system/systemd-update-utmp* && \\
    ln -sf /usr/lib/systemd/systemd /sbin/init && \\
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service spindle-kind-net.service && \\
    systemctl mask systemd-binfmt.service && \\
    mkdir -p /etc/kubernetes/manifests /var/lib/containerd && \\
    echo "$K8S_VERSION" > /kind/version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
DOCKERFILE
	log "building the node image layers"
	docker_ build -q -t "$node-layers" "$ctx/node" >/dev/null

	# Preload the control-plane images into the node's containerd (stored, not
	# unpacked: the node unpacks them when it starts).
	log "preloading the control-plane images"
	local images=(registry.k8s.io/kube-apiserver:$K8S_VERSION registry.k8s.io/kube-controller-manager:$K8S_VERSION
		registry.k8s.io/kube-scheduler:$K8S_VERSION registry.k8s.io/kube-proxy:$K8S_VERSION
		registry.k8s.io/etcd:$ETCD_TAG registry.k8s.io/pause:$PAUSE_VERSION registry.k8s.io/pause:3.10)
	local cid
	cid=$(docker_ run -d --privileged --entrypoint=sleep "$node-layers" infinity)
	trap 'rm -rf "$ctx"; docker_ rm -f "$cid" >/dev/null 2>&1 || true' RETURN
	docker_ save "${images[@]}" | docker_ exec -i "$cid" sh -c '
		set -e
		containerd >/tmp/containerd.log 2>&1 &
		pid=$!
		for i in $(seq 1 30); do ctr version >/dev/null 2>&1 && break; sleep 1; done
		ctr -n k8s.io images import --no-unpack --all-platforms --digests - >/dev/null
		kill $pid
		wait $pid || true
		rm -f /tmp/containerd.log'
	docker_ commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' "$cid" "$node" >/dev/null
	docker_ rm -f "$cid" >/dev/null
	docker_ rmi "$node-layers" >/dev/null
	# Node images of other inputs are 1 GB each: keep only this one.
	local old
	for old in $(docker_ images --format '{{.Repository}}:{{.Tag}}' spindle.local/kind-node); do
		[ "$old" = "$node" ] || docker_ rmi "$old" >/dev/null 2>&1 || true
	done
	log "built $node in $((SECONDS - start)) s"
	echo "$node"
}

# apps: the images the chart installs, under the names its defaults use, from
# this checkout (Spindle) and the pinned Multus module (thick flavor). Prints
# their references.
apps() {
	bash "$ENGINE" up
	local version ctx
	version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/spindle/Chart.yaml")
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' RETURN
	[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing: make kind-deps installs Debian's busybox-static (the chart's CNI installer runs it)"
	# Spindle: static binaries; busybox for the chart's CNI installer.
	mkdir -p "$ctx/spindle/bin" "$ctx/spindle/cni"
	local b
	for b in spindle-agent spindle-controller spindle-selftest spiderpool coordinator; do
		(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/spindle-net/spindle/cmd/internal/version.Version=$version" \
			-o "$ctx/spindle/$([ "$b" = spiderpool ] || [ "$b" = coordinator ] && echo cni || echo bin)/$b" "./cmd/$b")
	done
	cp "$BUSYBOX" "$ctx/spindle/busybox"
	cat >"$ctx/spindle/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
COPY bin/ /usr/local/bin/
COPY cni/ /opt/spindle/cni/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/spindle-controller"]
DOCKERFILE
	docker_ build -q -t "$SPINDLE_IMAGE:$version" "$ctx/spindle" >/dev/null
	echo "$SPINDLE_IMAGE:$version"

	# Multus thick: the daemon reads /etc/passwd and writes under /var/run.
	bash "$DEPS" multus-thick
	local mt
	mt=$(bash "$DEPS" path multus-thick)
	local r=$ctx/multus/root
	mkdir -p "$r/usr/src/multus-cni/bin" "$r/etc" "$r/run" "$r/var"
	cp "$mt/multus-daemon" "$mt/multus-shim" "$mt/install_multus" "$r/usr/src/multus-cni/bin/"
	cp "$mt/passthru-cni" "$r/usr/src/multus-cni/bin/passthru"
	echo 'root:x:0:0:root:/root:/sbin/nologin' >"$r/etc/passwd"
	ln -s /run "$r/var/run"
	printf 'FROM scratch\nCOPY root/ /\nENTRYPOINT ["/usr/src/multus-cni/bin/multus-daemon"]\n' >"$ctx/multus/Dockerfile"
	docker_ build -q -t "$MULTUS_IMAGE" "$ctx/multus" >/dev/null
	echo "$MULTUS_IMAGE"
}

case ${1:-build} in
build) build ;;
tag) tag ;;
apps) apps ;;
*) die "usage: images.sh [build|tag|apps]" ;;
esac
