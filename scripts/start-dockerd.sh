#!/usr/bin/env bash
# Makes sure a Docker daemon answers, for the docker remediation action's real
# test (remediate/docker_test.go). Idempotent: when `docker info` already
# works, it does nothing. Otherwise it starts dockerd in the background (there
# is no systemd on the CI machines), logging to .cache/dockerd/dockerd.log,
# waits up to 60 s for it, and prints the daemon's API version.
#
# Needs root and Debian's daemon: apt-get install -y docker.io
#
# DOCKERD_FLAGS adds flags. Without it, a daemon that dies while setting up its
# networking (no iptables or bridge in a sandbox) is tried once more with
# --iptables=false --bridge=none: the tests' containers use
# no network.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
logdir=${DOCKERD_LOG_DIR:-$root/.cache/dockerd}
log=$logdir/dockerd.log
timeout=60

api_version() { docker version --format '{{.Server.APIVersion}}' 2>/dev/null; }

if docker info >/dev/null 2>&1; then
	echo "docker daemon already up: API $(api_version) at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
	exit 0
fi
if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix://}" = "$DOCKER_HOST" ]; then
	echo "DOCKER_HOST=$DOCKER_HOST does not answer, and is not a local socket this script could start a daemon on" >&2
	exit 1
fi
command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install -y docker.io" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "starting dockerd needs root" >&2; exit 1; }
mkdir -p "$logdir"

# wait_up PID: 0 once the daemon answers, 1 if PID exits first, 2 at the timeout.
wait_up() {
	local pid=$1 deadline=$((SECONDS + timeout))
	while [ $SECONDS -lt $deadline ]; do
		docker info >/dev/null 2>&1 && return 0
		[ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
		sleep 0.5
	done
	return 2
}

# start FLAGS...: start dockerd detached from this shell (it must outlive it).
start() {
	echo "starting: dockerd $* (log: $log)"
	{ echo "=== $(date -u +%FT%TZ) dockerd $*"; } >>"$log"
	setsid dockerd "$@" >>"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$logdir/dockerd.pid"
}

# A daemon already starting (its pidfile names a live dockerd): only wait.
pidfile=/var/run/docker.pid
if [ -s $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null &&
	[ "$(cat /proc/"$(cat $pidfile)"/comm 2>/dev/null)" = dockerd ]; then
	echo "dockerd $(cat $pidfile) is running but not answering yet; waiting"
	rc=0
	wait_up "$(cat $pidfile)" || rc=$?
else
	# shellcheck disable=SC2086 # DOCKERD_FLAGS is a list of flags
	start ${DOCKERD_FLAGS:-}
	rc=0
	wait_up "$pid" || rc=$?
	if [ $rc = 1 ] && [ -z "${DOCKERD_FLAGS:-}" ]; then
		echo "dockerd exited early; last lines of its log:"
		tail -n 5 "$log"
		start --iptables=false --bridge=none
		rc=0
		wait_up "$pid" || rc=$?
	fi
fi
if [ $rc != 0 ]; then
	echo "docker daemon did not come up within ${timeout}s; last lines of $log:" >&2
	tail -n 30 "$log" >&2
	exit 1
fi
echo "docker daemon up: API $(api_version), server $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
