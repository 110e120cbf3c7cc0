#!/bin/sh
# The full measure of the /probe endpoint (issue 16): 200 fake gateways,
# each on its own loopback port, one in twenty of them with each of six
# faults (wrong token, port closed, health that never answers, ok:false,
# starting, garbage frames), probed through /probe every 5 s for 5 minutes
# with Prometheus' scrape-timeout header. Fails when any answer's
# clawdbot_up is wrong, a scrape fails or one comes back past the scrape
# timeout; prints the exporter's CPU and RSS per 100 targets and the
# extrapolation to 1,000 targets at a 15 s interval.
#
#   scripts/fleet-measure.sh [-targets 200] [-interval 5s] [-duration 5m] [-scrape-timeout 4s]
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/clawdbot_exporter" .
go build -o "$dir/fleetmeasure" ./internal/fleetmeasure
"$dir/fleetmeasure" -exporter "$dir/clawdbot_exporter" "$@" 2>"$dir/exporter.log" || {
	status=$?
	tail -n 20 "$dir/exporter.log" >&2
	exit $status
}
