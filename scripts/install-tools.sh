#!/usr/bin/env bash
# Builds the tools the mixin tests need beyond Debian's packages, from the Go
# module proxy, into a cache OUTSIDE the repository, and prints their paths:
#
#   promtool 3.x      (Debian ships only 2.42; the mixin tests run on both)
#   dashboard-linter  (grafana's linter for the dashboards in grafana/)
#
# Each tool is built in its own throwaway tools module under
# $TOOLS_CACHE/<name>-<version>/ and kept there: a stamp file marks a finished
# build, so a second run reuses the binary and takes no time. A cold build of
# promtool takes 15-20 minutes on 2 cores; warm module and build caches make it
# seconds. Builds run under nice: the machines are shared.
#
# Usage: scripts/install-tools.sh [promtool|dashboard-linter]...  (default: both)
# Output (stdout, one per line, shell-quoted for eval or `. file`):
#   PROMTOOL3=/path/to/promtool
#   DASHBOARD_LINTER=/path/to/dashboard-linter
# Progress and build logs go to stderr. mixin/promtool_test.go and
# mixin/dashboards_test.go find the binaries at the same paths (or take
# PROMTOOL3 / DASHBOARD_LINTER from the environment).
set -euo pipefail

# Versions: the single source of truth (the Go tests read these two lines).
PROMTOOL3_VERSION=v0.316.0
DASHBOARD_LINTER_VERSION=v0.0.0-20241224134444-1765d94aec4a

cache=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot_exporter/tools}
case $cache in /*) ;; *) cache=$PWD/$cache ;; esac
mkdir -p "$cache"

# build NAME MODULE PACKAGE VERSION [LDFLAGS]: the binary lands in
# $cache/NAME-VERSION/NAME; the stamp holds what was built, so a build that was
# interrupted or made differently is redone.
build() {
	local name=$1 module=$2 pkg=$3 version=$4 ldflags=${5:-}
	local dir=$cache/$name-$version
	local stamp="$pkg@$version ldflags=$ldflags"
	if [ -x "$dir/$name" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$stamp" ]; then
		echo "cached: $dir/$name" >&2
		return
	fi
	rm -rf "$dir"
	mkdir -p "$dir/src"
	printf 'module tools\n\ngo 1.26\n' >"$dir/src/go.mod"
	echo "building $name $version into $dir (log: $dir/build.log)" >&2
	local t0=$SECONDS
	if ! (cd "$dir/src" &&
		GOFLAGS=-mod=mod nice -n 10 go get -tool "$module@$version" &&
		GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$dir/$name.tmp" "$pkg") >"$dir/build.log" 2>&1; then
		tail -n 30 "$dir/build.log" >&2
		echo "building $name failed" >&2
		return 1
	fi
	mv "$dir/$name.tmp" "$dir/$name"
	printf '%s' "$stamp" >"$dir/.installed"
	echo "built $name in $((SECONDS - t0))s" >&2
}

build_promtool() {
	# Module v0.3MM.P is Prometheus 3.MM.P; stamp it so --version says so.
	local v=${PROMTOOL3_VERSION#v0.3}
	v=3.$((10#${v%%.*})).${v#*.}
	build promtool github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool \
		"$PROMTOOL3_VERSION" "-X github.com/prometheus/common/version.Version=$v"
	printf 'PROMTOOL3=%q\n' "$cache/promtool-$PROMTOOL3_VERSION/promtool"
}

build_dashboard_linter() {
	# The linter's pseudo-version is not in the checksum database.
	GONOSUMDB=github.com/grafana/dashboard-linter${GONOSUMDB:+,$GONOSUMDB} \
		build dashboard-linter github.com/grafana/dashboard-linter github.com/grafana/dashboard-linter \
		"$DASHBOARD_LINTER_VERSION"
	printf 'DASHBOARD_LINTER=%q\n' "$cache/dashboard-linter-$DASHBOARD_LINTER_VERSION/dashboard-linter"
}

[ $# -gt 0 ] || set -- promtool dashboard-linter
# Both builds at once: downloads overlap, the shared build cache is safe for
# concurrent use. Each prints its path when done; the order follows completion.
pids=()
for t in "$@"; do
	case $t in
	promtool) build_promtool & ;;
	dashboard-linter) build_dashboard_linter & ;;
	*) echo "unknown tool: $t (want promtool or dashboard-linter)" >&2; exit 2 ;;
	esac
	pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail = 0 ] || { echo "tool install failed" >&2; exit 1; }
