#!/bin/sh
# What `systemctl --user restart clawdbot-gateway` does for the demo's and the
# end-to-end test's supervisor loop: ask for a start, end the running gateway.
# $1 is the directory the supervisor watches.
touch "$1/start"
pid=$(cat "$1/gateway.pid" 2>/dev/null) && kill -KILL "$pid" 2>/dev/null
exit 0
