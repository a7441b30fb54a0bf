#!/usr/bin/env bash
# A Docker engine for the kind cluster that never touches the machine's root
# network namespace: Debian's dockerd runs inside a network namespace of its
# own (KIND_NETNS), with its own data root (cached: node images survive
# between runs), exec root and socket. Everything that talks to it or to the
# cluster it hosts runs through `engine.sh exec`.
#
#   engine.sh up            start the engine (idempotent)
#   engine.sh down          remove its containers, stop it, remove the namespace
#   engine.sh exec CMD...   run CMD in the engine's namespace with DOCKER_HOST set
#   engine.sh status        exit 0 when the engine answers
#   engine.sh env           print KIND_NETNS and KIND_DOCKER_HOST (shell lines)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${SPINDLE_CACHE:-$HOME/.cache/spindle}
KIND_NETNS=${KIND_NETNS:-spk-engine}
DATA_ROOT=${KIND_DOCKER_DATA:-$CACHE/kind/docker}
RUN_DIR=/run/$KIND_NETNS
SOCK=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid
LOG=${KIND_ENGINE_LOG:-$ROOT/_out/kind/dockerd.log}
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER=${DOCKER:-/usr/bin/docker}

log() { echo "kind-engine: $*" >&2; }
die() {
	log "$*"
	exit 1
}

in_ns() { ip netns exec "$KIND_NETNS" env DOCKER_HOST="unix://$SOCK" "$@"; }

answers() { [ -S "$SOCK" ] && in_ns "$DOCKER" info >/dev/null 2>&1; }

# cgroup_mounts prints "TYPE OPTIONS MOUNTPOINT" for every cgroup hierarchy
# mounted here; `ip netns exec` hides them behind a fresh /sys, and the engine
# mounts them again (without cgroup2, every node would share one cgroup root).
cgroup_mounts() {
	awk '{
		for (i = 7; $i != "-"; i++) {}
		fstype = $(i + 1); super = $(i + 3)
		if (fstype != "cgroup" && fstype != "cgroup2") next
		n = split(super, o, ","); opts = ""
		for (j = 1; j <= n; j++) if (o[j] != "rw" && o[j] != "ro") opts = opts (opts == "" ? "" : ",") o[j]
		print fstype, (opts == "" ? "-" : opts), $5
	}' /proc/self/mountinfo
}

up() {
	[ "$(id -u)" = 0 ] || die "the engine needs root (network namespaces, mounts)"
	[ -x "$DOCKERD" ] || die "$DOCKERD is missing: make kind-deps installs Debian's docker.io"
	if answers; then
		return 0
	fi
	ip netns list | grep -qw "^$KIND_NETNS" || ip netns add "$KIND_NETNS"
	ip -n "$KIND_NETNS" link set lo up
	mkdir -p "$RUN_DIR" "$DATA_ROOT" "$(dirname "$LOG")" "$CACHE/kind/bin"
	local nocap=$CACHE/kind/bin/nocap
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$nocap" ./test/kind/nocap)
	local mounts
	mounts=$(cgroup_mounts)
	[ -n "$mounts" ] || die "no cgroup hierarchy is mounted on this machine"
	log "starting dockerd in netns $KIND_NETNS (data root $DATA_ROOT, log $LOG)"
	# shellcheck disable=SC2016
	ip netns exec "$KIND_NETNS" setsid bash -c '
		set -e
		mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
		while read -r type opts mp; do
			mkdir -p "$mp"
			if [ "$opts" = - ]; then mount -t "$type" "$type" "$mp"; else mount -t "$type" -o "$opts" "$type" "$mp"; fi
		done <<<"$1"
		shift
		exec "$@"' _ "$mounts" \
		"$DOCKERD" --data-root "$DATA_ROOT" --exec-root "$RUN_DIR/exec" --pidfile "$PIDFILE" \
		-H "unix://$SOCK" --containerd-namespace "$KIND_NETNS" --containerd-plugins-namespace "$KIND_NETNS-plugins" \
		--add-runtime "nocap=$nocap" --default-runtime nocap --storage-driver overlay2 --log-level warn \
		</dev/null >"$LOG" 2>&1 &
	local i
	for i in $(seq 1 60); do
		answers && {
			log "engine up: $(in_ns "$DOCKER" version --format '{{.Server.Version}}')"
			return 0
		}
		sleep 1
	done
	tail -20 "$LOG" >&2
	die "dockerd did not answer on $SOCK within 60 s (log above)"
}

down() {
	if answers; then
		local ids
		ids=$(in_ns "$DOCKER" ps -aq)
		# shellcheck disable=SC2086
		[ -z "$ids" ] || in_ns "$DOCKER" rm -f $ids >/dev/null
	fi
	if [ -f "$PIDFILE" ]; then
		local pid
		pid=$(cat "$PIDFILE")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -rf "$RUN_DIR"
	if ip netns list | grep -qw "^$KIND_NETNS"; then ip netns del "$KIND_NETNS"; fi
	log "engine down"
}

case ${1:-} in
up) up ;;
down) down ;;
status) answers ;;
env) printf 'KIND_NETNS=%s\nKIND_DOCKER_HOST=unix://%s\n' "$KIND_NETNS" "$SOCK" ;;
exec)
	shift
	in_ns "$@"
	;;
*) die "usage: engine.sh up|down|status|env|exec CMD..." ;;
esac
