package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// pause holds a PID namespace for containers that join it (compose's
// pid: "service:…", like Kubernetes' pause container), so that a gateway
// container's restart does not kill the exporter beside it. As PID 1 of the
// namespace it reaps the orphans the kernel hands it, and exits on SIGTERM or
// SIGINT.
func pause(out io.Writer) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	fmt.Fprintln(out, "holding the PID namespace; SIGTERM ends it")
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return 0
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}
