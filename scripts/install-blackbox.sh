#!/usr/bin/env bash
# Builds blackbox_exporter from the Go module proxy into a cache OUTSIDE the
# repository and prints its path. scripts/bench-compare.sh runs it beside the
# exporter against the same gateway. Like scripts/install-tools.sh: one
# throwaway module per version, a stamp marks a finished build, so a second
# run takes no time. The build runs under nice: the machines are shared.
#
# Usage: scripts/install-blackbox.sh
# Output (stdout, shell-quoted for eval): BLACKBOX_EXPORTER=/path/to/blackbox_exporter
set -euo pipefail

BLACKBOX_VERSION=${BLACKBOX_VERSION:-v0.28.0}

cache=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot_exporter/tools}
case $cache in /*) ;; *) cache=$PWD/$cache ;; esac
dir=$cache/blackbox_exporter-$BLACKBOX_VERSION
bin=$dir/blackbox_exporter
pkg=github.com/prometheus/blackbox_exporter
stamp="$pkg@$BLACKBOX_VERSION"
if [ -x "$bin" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$stamp" ]; then
	echo "cached: $bin" >&2
else
	rm -rf "$dir"
	mkdir -p "$dir/src"
	printf 'module tools\n\ngo 1.26\n' >"$dir/src/go.mod"
	echo "building blackbox_exporter $BLACKBOX_VERSION into $dir (log: $dir/build.log)" >&2
	t0=$SECONDS
	if ! (cd "$dir/src" &&
		GOFLAGS=-mod=mod nice -n 10 go get -tool "$pkg@$BLACKBOX_VERSION" &&
		GOFLAGS=-mod=mod nice -n 10 go build -trimpath \
			-ldflags "-s -w -X github.com/prometheus/common/version.Version=${BLACKBOX_VERSION#v}" \
			-o "$bin.tmp" "$pkg") >"$dir/build.log" 2>&1; then
		tail -n 30 "$dir/build.log" >&2
		echo "building blackbox_exporter failed" >&2
		exit 1
	fi
	mv "$bin.tmp" "$bin"
	printf '%s' "$stamp" >"$dir/.installed"
	echo "built blackbox_exporter in $((SECONDS - t0))s" >&2
fi
printf 'BLACKBOX_EXPORTER=%q\n' "$bin"
