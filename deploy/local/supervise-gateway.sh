#!/bin/sh
# A tiny stand-in for systemd's Restart=always, for `make demo` and the
# end-to-end test: runs the gateway command given as arguments, again and
# again. In directory $SUPERVISOR_DIR:
#   gateway.pid    the running gateway's pid
#   manual         when present, wait for a start request after an exit
#   start          a start request (restart-gateway.sh makes one)
#   crash-after    when present, kill the gateway that many seconds after
#                  each start (a restart storm)
d=${SUPERVISOR_DIR:?}
while :; do
	if [ -e "$d/manual" ] && [ ! -e "$d/start" ] && [ -e "$d/gateway.pid" ]; then
		sleep 0.2
		continue
	fi
	rm -f "$d/start"
	"$@" &
	pid=$!
	echo "$pid" >"$d/gateway.pid"
	if [ -e "$d/crash-after" ]; then
		(sleep "$(cat "$d/crash-after")"; kill -KILL "$pid" 2>/dev/null) &
	fi
	wait "$pid"
	sleep 0.2
done
